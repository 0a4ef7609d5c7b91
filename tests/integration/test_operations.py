"""What a sysadmin relies on: hub restarts, redeploys and the browser view."""
import re
import time

import pytest

from tests.integration.fixtures import ARTIFACTS, TEST_CONFIG, Person, deploy, docker, driver, wait_for

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
    container = deployment.container("carol")
    started = docker("inspect", "--format", "{{.State.StartedAt}}", container)
    began = time.monotonic()
    again = deploy(TEST_CONFIG)
    seconds = time.monotonic() - began
    assert "0 changed task(s)" in again.deploy_output, again.deploy_output[-4000:]
    assert seconds < 60, f"a no-change deploy took {seconds:.0f} s"
    assert docker("inspect", "--format", "{{.State.StartedAt}}", container) == started
    assert again.passwords == deployment.passwords


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
