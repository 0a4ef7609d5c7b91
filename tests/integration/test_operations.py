"""What a sysadmin relies on: hub restarts, redeploys, the browser view and the culler."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import culler
from tests.integration.fixtures import (ARTIFACTS, REPO, TEST_CONFIG, Person, deploy, docker, driver,
                                        read_passwords, wait_for)

pytestmark = pytest.mark.usefixtures("explain")


@pytest.fixture(scope="module")
def carol(deployment):
    person = Person(deployment, "carol").start_session()
    return person


def test_restarting_the_hub_leaves_running_servers_running_and_reachable(carol, deployment):
    container = deployment.container("carol")
    started = docker("inspect", "--format", "{{.State.StartedAt}}", container)
    assert carol.server_api("GET", "/status").status_code == 200  # carol is working
    docker("stop", f"{deployment.name}-hub")
    # while the hub is down, carol keeps working: the proxy routes to her server,
    # which knows her from before
    assert carol.server_api("GET", "/status").status_code == 200
    assert carol.run("print(6 * 7)").strip() == "42"
    docker("start", f"{deployment.name}-hub")
    wait_for(lambda: deployment.api("GET", "/").status_code == 200, 120, "the hub to come back")
    assert docker("inspect", "--format", "{{.State.StartedAt}}", container) == started
    wait_for(lambda: (deployment.server("carol") or {}).get("ready"), 60, "the hub to find carol's server again")
    assert carol.run("print(6 * 7)").strip() == "42"


def test_a_second_deploy_changes_nothing_and_leaves_servers_alone(carol, deployment):
    """...even after the operator deleted a line of initial-passwords, as its header allows."""
    container = deployment.container("carol")
    started = docker("inspect", "--format", "{{.State.StartedAt}}", container)
    passwords_file = deployment.state_dir / "initial-passwords"
    original = passwords_file.read_text()
    passwords_file.write_text("".join(line for line in original.splitlines(keepends=True)
                                      if not line.startswith("bob ")))
    try:
        began = time.monotonic()
        again = deploy(TEST_CONFIG)
        seconds = time.monotonic() - began
    finally:
        passwords_file.write_text(original)
    assert "0 changed task(s)" in again.deploy_output, again.deploy_output[-4000:]
    assert seconds < 60, f"a no-change deploy took {seconds:.0f} s"
    assert docker("inspect", "--format", "{{.State.StartedAt}}", container) == started
    assert "bob" not in again.passwords
    assert again.passwords == {n: p for n, p in deployment.passwords.items() if n != "bob"}
    bob = Person(deployment, "bob")  # with the password he was given at the first deploy
    bob.login()
    assert bob.logged_in


def test_headless_chromium_logs_in_and_shows_jupyterlab_with_the_course_folder(deployment):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "jupyterlab-student.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(f"{deployment.url}/hub/login")
            page.fill("#username_input", "teacher")
            page.fill("#password_input", deployment.passwords["teacher"])
            page.click("#login_submit")
            page.wait_for_url("**/user/teacher/lab**", timeout=300_000)
            page.locator(".jp-DirListing-item", has_text="00-welcome").wait_for(timeout=120_000)
            assert "/lab/tree/course" in page.url
            page.screenshot(path=str(screenshot))
            # the unit 03 lab opens as a notebook a student can work in
            page.goto(f"{deployment.user_url('teacher')}/lab/tree/course/u03-nn-from-scratch/03_lab_mlp_from_scratch.ipynb")
            page.locator(".jp-Notebook .jp-MarkdownCell", has_text="MLP from scratch").first.wait_for(timeout=120_000)
            # JupyterLab renders only the cells in view; the status bar counts them all
            cells = page.get_by_text(re.compile(r"Cell 1/\d+")).first
            cells.wait_for(timeout=60_000)
            assert int(cells.inner_text().split("/")[1]) > 20
            # and its kernel starts, so the student can run it
            page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).first.wait_for(timeout=180_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "unit03-lab.png"))
            browser.close()
    assert screenshot.stat().st_size > 10_000


def test_an_instructor_gets_the_instructors_limits(deployment):
    limits = deployment.limits("teacher")
    assert (limits["memory"], limits["cpus"]) == (3 * 1024**3, 2.0)


def test_remove_keeps_students_volumes_and_a_redeploy_gives_their_work_back(carol, deployment):
    """Does `make remove` (without DELETE_VOLUMES) keep homes, and does a redeploy bring them back?"""
    carol.run("open('/home/jovyan/thesis.txt', 'w').write('chapter 1')")
    removed = driver("remove", "--config", str(TEST_CONFIG))
    assert removed.returncode == 0, removed.stdout[-3000:]
    names = docker("ps", "-a", "--format", "{{.Names}}").split()
    assert not [n for n in names if n.startswith(f"{deployment.name}-")], names
    assert f"{deployment.name}-home-carol" in docker("volume", "ls", "-q").split()

    again = deploy(TEST_CONFIG)
    assert again.passwords == deployment.passwords
    back = Person(again, "carol").start_session()
    assert back.server_api("GET", "/contents/thesis.txt").json()["content"] == "chapter 1"


def test_the_culler_spares_a_silent_training_loop_and_stops_an_idle_server(deployment):
    """A kernel busy for longer than the idle timeout, printing nothing, keeps its server;
    a server whose kernel sits idle is stopped (tests/integration/culler.py)."""
    def hub_exec(*args: str, env: dict[str, str] | None = None) -> list[str]:
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return ["docker", "exec", "-i", *options, f"{deployment.name}-hub", *args]

    culler.spares_the_busy_and_stops_the_idle(deployment, "dana", "ivan", hub_exec)


def test_an_image_build_reports_each_step_as_it_starts(images, tmp_path):
    """The file a cold deploy's driver follows gets each step of a real build, then its end."""
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
                                         "RUN echo one > /one\nRUN sleep 1 && cat /one\n")
    progress_file = tmp_path / "progress"
    repository = "classroom-test/progress-probe"
    built = subprocess.run(
        [sys.executable, str(REPO / "images/build.py"), "--repository", repository,
         "--dockerfile", str(tmp_path / "Dockerfile"), "--base", images["hub"],
         "--build-arg", f"BASE_IMAGE={images['hub']}", "--force", "--progress-file", str(progress_file)],
        capture_output=True, text=True, timeout=600)
    try:
        assert built.returncode == 0, built.stdout + built.stderr
        lines = progress_file.read_text().splitlines()
        assert any(line.startswith(f"{repository}: ") and "RUN echo one" in line for line in lines), lines
        assert any("RUN sleep 1 && cat /one" in line for line in lines), lines
        assert lines[-1].startswith(f"{repository}: finished in "), lines
    finally:
        subprocess.run(["docker", "image", "rm", "-f", f"{repository}:latest",
                        json.loads(built.stdout)["image"] if built.returncode == 0 else f"{repository}:latest"],
                       capture_output=True)


def _course_records(deployment) -> dict:
    """Every due date and score in the course's gradebook, read with nbgrader's API."""
    code = ("import json; from nbgrader.api import Gradebook\n"
            "gb = Gradebook('sqlite:////srv/course/test-course/gradebook.db', 'test-course')\n"
            "print(json.dumps({a.name: [str(a.duedate), sorted((s.student.id, s.score) for s in a.submissions)]"
            " for a in gb.assignments}))")
    return json.loads(docker("exec", f"{deployment.name}-grading", "python3", "-c", code))


def test_a_backup_restored_onto_a_fresh_deployment_brings_everything_back(carol, deployment):
    """`make backup` while the classroom runs; the host loses everything (remove with volumes,
    a fresh deploy with new secrets and passwords); `make restore` brings back every file,
    grade, password, token and secret as they were at the backup, and nothing written after."""
    carol.run("open('/home/jovyan/thesis.txt', 'w').write('chapter 2')")
    in_gradebook = ("from nbgrader.api import Gradebook; import datetime as dt\n"
                    "gb = Gradebook('sqlite:////srv/course/test-course/gradebook.db', 'test-course')\n"
                    "gb.update_or_create_assignment('backup-probe', duedate=dt.datetime(2031, 1, 2, 3, 4))\n")
    docker("exec", f"{deployment.name}-grading", "python3", "-c", in_gradebook)
    records = _course_records(deployment)
    secrets = {p.name: p.read_bytes() for p in (deployment.state_dir / "secrets").iterdir()}
    hub_db_users = deployment.api("GET", "/users").json()

    taken = driver("backup", "--config", str(TEST_CONFIG))
    assert taken.returncode == 0, taken.stdout[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", taken.stdout)  # Ansible colours its output
    folder = Path(re.search(r"Backup written: (\S+)", plain).group(1))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert f"{deployment.name}-home-carol" in manifest["volumes"], manifest
    assert {f"{deployment.name}-course", f"{deployment.name}-hub-data"} <= set(manifest["volumes"])

    carol.run("open('/home/jovyan/after-the-backup.txt', 'w').write('lost on restore')")
    gone = driver("remove", "--config", str(TEST_CONFIG), "--delete-volumes")
    assert gone.returncode == 0, gone.stdout[-3000:]
    fresh = deploy(TEST_CONFIG)
    assert fresh.passwords["carol"] != deployment.passwords["carol"]  # a new classroom, truly

    restored = driver("restore", "--config", str(TEST_CONFIG), "--backup", str(folder))
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert {p.name: p.read_bytes() for p in (deployment.state_dir / "secrets").iterdir()} == secrets
    assert read_passwords(deployment.state_dir) == deployment.passwords
    back = Person(deployment, "carol")  # her first password, and her old token, work again
    back.token = carol.token
    back.login()
    assert back.logged_in
    back.wait_ready()
    assert back.server_api("GET", "/contents/thesis.txt").json()["content"] == "chapter 2"
    assert back.server_api("GET", "/contents/after-the-backup.txt").status_code == 404
    assert _course_records(deployment) == records
    assert [u["name"] for u in deployment.api("GET", "/users").json()] == [u["name"] for u in hub_db_users]

    # the schedule's service is up and waiting for its time
    logs = subprocess.run(["docker", "logs", f"{deployment.name}-backup"], capture_output=True, text=True)
    assert "next backup at" in logs.stdout, logs.stdout + logs.stderr
    # retention: a backup with keep 1 leaves itself alone in the folder
    hub_image = docker("inspect", "--format", "{{.Config.Image}}", f"{deployment.name}-hub")
    docker("run", "--rm", "--network", "none", "-v", "/var/run/docker.sock:/var/run/docker.sock",
           "-v", f"{deployment.state_dir}:/srv/state", "-v", f"{folder.parent}:/srv/backups",
           "--entrypoint", "classroom-backup", hub_image, "create", "--name", deployment.name,
           "--state", "/srv/state", "--dest", "/srv/backups", "--host-dest", str(folder.parent),
           "--image", hub_image, "--keep", "2")
    kept = sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f"{deployment.name}-"))
    assert len(kept) == 2 and folder.name in kept, kept

    damaged = folder / f"volume-{deployment.name}-course.tar.gz"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    refused = driver("restore", "--config", str(TEST_CONFIG), "--backup", str(folder))
    assert refused.returncode != 0 and "damaged" in refused.stdout + refused.stderr
    assert deployment.api("GET", "/").status_code == 200  # refused before anything stopped
    assert back.server_api("GET", "/contents/thesis.txt").status_code == 200


def _host_engine_processes(pattern: str = "dockerd|containerd|containerd-shim.*") -> list[int]:
    """The engine's processes in this machine's own network namespace: the swarm suite's test
    nodes run engines of their own, each in its namespace, which these tests leave alone."""
    found = subprocess.run(["pgrep", "-x", pattern], capture_output=True, text=True).stdout.split()
    ours = os.readlink("/proc/self/ns/net")
    pids = []
    for pid in found:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != ours:
                continue
        except OSError:
            # Gone meanwhile, or a zombie not yet reaped (its namespaces cannot be read): counted,
            # since a killed engine's containerd is one until reaped, and the engine's next start
            # takes its pid for a containerd still running.
            if not os.path.exists(f"/proc/{pid}"):
                continue
        pids.append(int(pid))
    return pids


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _start_engine() -> None:
    """Start the engine as a booting host does (here, as the deploy's docker_engine role does on
    a host without systemd), and wait until it answers."""
    subprocess.run("setsid nohup dockerd >> /var/log/dockerd.log 2>&1 < /dev/null &", shell=True, check=True)
    wait_for(_engine_answers, 120, "the Docker engine to answer")


def _classroom_is_back(deployment, person: Person) -> None:
    """The hub answers through the proxy, every service runs, and a student works again."""
    wait_for(lambda: deployment.api("GET", "/").status_code == 200, 180, "the hub to answer again")
    for role in ("proxy", "grading", "formgrader"):
        wait_for(lambda: docker("inspect", "--format", "{{.State.Running}}", f"{deployment.name}-{role}") == "true",
                 120, f"the {role} to run again")
    wait_for(lambda: requests_ok(f"{deployment.service_url('grading')}/api/progress", person.token), 120,
             "the grading service to answer")
    person.login()
    person.wait_ready()
    assert person.server_api("GET", "/contents/before-the-outage.txt").json()["content"] == "kept"
    assert person.run("print(6 * 7)").strip() == "42"


def requests_ok(url: str, token: str) -> bool:
    import requests

    return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30).status_code in (200, 403)


def test_the_classroom_comes_back_by_itself_after_the_engine_restarts(carol, deployment):
    """The engine stops (every container with it, as when the host shuts down) and starts again:
    the hub, proxy, grading service and formgrader come back by their restart policies, the
    hub notices that students' servers are gone, and a student logs in to their kept work."""
    carol.run("open('/home/jovyan/before-the-outage.txt', 'w').write('kept')")
    pid = _host_engine_processes("dockerd")[0]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _engine_answers() and not _host_engine_processes("dockerd"), 180, "the engine to stop")
    _start_engine()
    _classroom_is_back(deployment, carol)


def test_the_classroom_comes_back_after_a_power_cut(carol, deployment):
    """Every process of the engine and of every container is killed at once (no shutdown at
    all); when the engine starts again the classroom recovers, its databases intact."""
    carol.run("open('/home/jovyan/before-the-outage.txt', 'w').write('kept')")
    pids = docker("ps", "-q")
    container_pids = [docker("inspect", "--format", "{{.State.Pid}}", c) for c in pids.split()]
    for pid in _host_engine_processes() + container_pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    wait_for(lambda: not _host_engine_processes(), 60, "the engine's processes to be gone")
    Path("/var/run/docker.pid").unlink(missing_ok=True)  # a boot starts with an empty /run
    _start_engine()
    _classroom_is_back(deployment, carol)
    check = ("import sqlite3; print(sqlite3.connect('/srv/jupyterhub/data/jupyterhub.sqlite')"
             ".execute('pragma integrity_check').fetchone()[0])")
    assert docker("exec", f"{deployment.name}-hub", "python3", "-c", check) == "ok"
