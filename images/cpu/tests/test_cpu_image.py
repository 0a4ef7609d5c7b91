"""The CPU single-user image: its smoke notebook, the helper package's tests, a read-only environment."""
from pathlib import Path

from tests.integration.fixtures import execute_notebook, run_in_image

HERE = Path(__file__).resolve().parent
COURSE_TESTS = HERE.parents[2] / "course/tests"


def test_the_smoke_notebook_runs_inside_the_cpu_image(images):
    executed = execute_notebook(images["cpu"], HERE / "smoke.ipynb")
    assert "+cpu" in executed


def test_the_helper_packages_own_tests_pass_inside_the_cpu_image(images):
    result = run_in_image(images["cpu"], "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "/course-tests",
                          mounts={COURSE_TESTS: "/course-tests"},
                          options=("-e", "NNCOURSE_FAST_MODE=1", "-e", "MPLBACKEND=Agg", "--workdir", "/tmp"))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_the_course_environment_is_root_owned_and_the_server_runs_as_a_user(images):
    result = run_in_image(images["cpu"], "sh", "-c", "id -u; stat -c %U /opt/venv/lib/python3.11/site-packages; "
                          "touch /opt/venv/x 2>&1 || echo denied")
    lines = result.stdout.split()
    assert lines[:2] == ["1000", "root"]
    assert "denied" in result.stdout


def test_the_image_holds_the_course_notebooks_and_the_start_script(images):
    result = run_in_image(images["cpu"], "sh", "-c", "ls /opt/course/notebooks/*; command -v classroom-start")
    assert "welcome.ipynb" in result.stdout
    assert "/usr/local/bin/classroom-start" in result.stdout


def test_the_image_holds_student_versions_without_solutions_or_hidden_tests(images):
    result = run_in_image(images["cpu"], "sh", "-c",
                          "ls /opt/course/notebooks | wc -l; "
                          "grep -rlE 'BEGIN (SOLUTION|HIDDEN TESTS)|MARK SCHEME' /opt/course /opt/course-src || true")
    count, *leaks = result.stdout.split()
    assert int(count) >= 1
    assert leaks == [], f"solutions or hidden tests in the image: {leaks}"
