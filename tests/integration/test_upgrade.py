"""An upgrade: an earlier release of this repository is deployed, students work in it and get
grades, then today's version is deployed over it with the same operator file. Nothing is lost.

The earlier release is a commit of this repository's history (EARLIER), unpacked with
`git archive` and deployed by its own driver and playbooks; its images are built from its own
tree (the heavy layers are shared with today's). A deployment of its own (name, ports, state),
removed with its volumes at the end.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

from .fixtures import REPO, Deployment, Person, deploy, docker, driver, read_passwords, wait_for

# The release that landed before the operations work (backups, busy-kernel culler, TLS redirect).
EARLIER = "760ac85e849bc78d8eadfddecfc9eaff148cebb9"
NAME = "classroom-upgrade"


def earlier_tree(folder: Path) -> Path:
    """The earlier release's files, as `git archive` gives them."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", EARLIER],
                             capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(folder)
    return folder


def earlier_deploy(tree: Path, config_file: Path) -> Deployment:
    """Deploy with the earlier release's own driver, as an operator did before upgrading."""
    result = subprocess.run([sys.executable, str(tree / "ansible/classroom.py"), "deploy", "--config",
                             str(config_file)], capture_output=True, text=True, cwd=tree, timeout=3600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    config = yaml.safe_load(config_file.read_text())
    deployment = Deployment(config_file, config, result.stdout, 0.0)
    deployment.passwords = read_passwords(deployment.state_dir)
    return deployment


def course_records(deployment: Deployment) -> dict:
    code = ("import json; from nbgrader.api import Gradebook\n"
            "gb = Gradebook('sqlite:////srv/course/upgrade-course/gradebook.db', 'upgrade-course')\n"
            "print(json.dumps({a.name: [str(a.duedate), sorted((s.student.id, s.score) for s in a.submissions)]"
            " for a in gb.assignments}))")
    return json.loads(docker("exec", f"{NAME}-grading", "python3", "-c", code))


GRADE = """
from nbgrader.api import Gradebook
import datetime as dt
gb = Gradebook('sqlite:////srv/course/upgrade-course/gradebook.db', 'upgrade-course')
gb.update_or_create_assignment('lab1', duedate=dt.datetime(2031, 1, 2, 3, 4))
gb.update_or_create_notebook('lab1', 'lab1')
gb.update_or_create_grade_cell('answer', 'lab1', 'lab1', max_score=5, cell_type='code')
gb.update_or_create_student('ada')
gb.add_submission('lab1', 'ada')
grade = gb.find_grade('answer', 'lab1', 'lab1', 'ada')
grade.manual_score = 4
gb.db.commit()
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("upgrade") / "classroom-upgrade.yml"
    path.write_text(yaml.safe_dump({
        "course_id": "upgrade-course", "name": NAME, "state_dir": "/var/lib/classroom-upgrade",
        "hub": {"port": 18300, "bind_address": "127.0.0.1", "domain": "classroom.localhost"},
        "roster": [{"username": "ada"}, {"username": "teacher", "role": "instructor"}],
        "limits": {"student": {"memory": "1G", "cpus": 1.0}, "instructor": {"memory": "1G", "cpus": 1.0},
                   "shm_size": "256M", "pids": 256},
        "culler": {"enabled": False, "timeout_seconds": 3600, "every_seconds": 300},
        "grading": {"workers": 1},
        "images": {"build_cuda": False},
    }))
    yield path
    if os.environ.get("KEEP_DEPLOYMENT") != "1":
        removed = driver("remove", "--config", str(path), "--delete-volumes")
        assert removed.returncode == 0, removed.stdout[-3000:]


def test_deploying_today_over_an_earlier_release_loses_nothing(config_file, tmp_path):
    earlier = earlier_deploy(earlier_tree(tmp_path / "earlier"), config_file)
    ada = Person(earlier, "ada").start_session()
    ada.run("open('/home/jovyan/essay.txt', 'w').write('written before the upgrade')")
    docker("exec", f"{NAME}-grading", "python3", "-c", GRADE)
    records = course_records(earlier)
    assert records["lab1"][1] == [["ada", 4.0]]
    hub_image = docker("inspect", "--format", "{{.Image}}", f"{NAME}-hub")
    server = earlier.container("ada")
    started = docker("inspect", "--format", "{{.State.StartedAt}}", server)
    secrets = {p.name: p.read_bytes() for p in (earlier.state_dir / "secrets").iterdir()}

    upgraded = deploy(config_file)  # today's driver, playbooks and images, same operator file
    assert docker("inspect", "--format", "{{.Image}}", f"{NAME}-hub") != hub_image  # the hub is today's
    assert upgraded.passwords == earlier.passwords
    assert {p.name: p.read_bytes() for p in (earlier.state_dir / "secrets").iterdir() if p.name in secrets} == secrets
    # ada's server kept running through the upgrade, on the image it started with
    assert docker("inspect", "--format", "{{.State.StartedAt}}", server) == started
    wait_for(lambda: upgraded.api("GET", "/").status_code == 200, 120, "the upgraded hub")
    # the new proxy starts empty; the hub puts ada's route back as it starts
    essay = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        ada.server_api("GET", "/contents/essay.txt")), 120, "ada's server to be routed again")
    assert essay["content"] == "written before the upgrade"
    assert ada.run("print(6 * 7)").strip() == "42"  # her old token, through the new hub and proxy
    assert course_records(upgraded) == records
    again = Person(upgraded, "ada")  # her first password still logs her in
    again.login()
    assert again.logged_in
    # her next server is today's image, with her work
    upgraded.stop_server("ada")
    again.create_token()
    again.start_session()
    assert docker("inspect", "--format", "{{.Config.Image}}", server) == upgraded.settings()["images"]["cpu"]
    assert again.server_api("GET", "/contents/essay.txt").json()["content"] == "written before the upgrade"
