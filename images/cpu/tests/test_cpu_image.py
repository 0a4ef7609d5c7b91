"""The CPU single-user image: its smoke notebook, the helper package's tests, a read-only environment."""
import subprocess
import time
from pathlib import Path

from tests.integration.fixtures import execute_notebook, run_in_image

HERE = Path(__file__).resolve().parent
COURSE_TESTS = HERE.parents[2] / "course/tests"


def test_the_smoke_notebook_runs_inside_the_cpu_image(images):
    executed = execute_notebook(images["cpu"], HERE / "smoke.ipynb")
    assert "+cpu" in executed


def test_every_teaching_package_works_offline_inside_the_cpu_image(images):
    """seaborn, tqdm with widgets, TensorBoard, torchviz with dot, ONNX (dynamo export, Runtime,
    quantization), FastAPI on uvicorn, Lightning, a pretrained transformer and W&B, offline."""
    executed = execute_notebook(images["cpu"], HERE / "teaching_environment.ipynb",
                                options=("-e", "MPLBACKEND=Agg"))
    assert "similar" in executed


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


def test_no_program_in_the_image_gains_privileges(images):
    """A student's code could run a set-user-ID program (su, passwd, mount) to become root
    wherever no-new-privileges is not set (a swarm service): the image has none."""
    result = run_in_image(images["cpu"], "sh", "-c", "find / -xdev -perm /6000 -type f; echo done")
    assert result.stdout.split() == ["done"], result.stdout


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


def test_nbgraders_student_routes_work_but_nbgrader_loads_only_on_first_use(images):
    """Does the assignment list answer, with nbgrader imported at the first request, not at start?"""
    name = "classroom-lazy-nbgrader-test"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", images["cpu"],
                    "jupyter", "lab", "--ip=127.0.0.1", "--port=8888", "--ServerApp.token=t", "--no-browser"],
                   check=True, capture_output=True)
    try:
        probe = ("import json, urllib.request as u\n"
                 "r = u.urlopen(u.Request('http://127.0.0.1:8888/{}', headers={{'Authorization': 'token t'}}))\n"
                 "print(r.status, r.read()[:200].decode())")
        for _ in range(60):
            ready = subprocess.run(["docker", "exec", name, "python", "-c", probe.format("api/status")],
                                   capture_output=True, text=True)
            if ready.returncode == 0:
                break
            time.sleep(1)
        started = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        assert "Loading the assignment_list nbgrader serverextension" not in started
        version = subprocess.run(["docker", "exec", name, "python", "-c", probe.format("nbgrader_version?version=0.9.6")],
                                 capture_output=True, text=True)
        assert version.returncode == 0, version.stderr[-2000:]
        assert version.stdout.startswith("200"), version.stdout
        used = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        assert "Loading the assignment_list nbgrader serverextension" in used
        extensions = subprocess.run(["docker", "exec", name, "jupyter", "server", "extension", "list"],
                                    capture_output=True, text=True)
        listing = extensions.stdout + extensions.stderr
        assert "classroom_lazy" in listing
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_the_server_does_not_build_jsonschemas_iri_parser_at_start(images):
    """Is rfc3987-syntax left out, so jsonschema does not build its 14 MiB parser in every server?

    jsonschema still validates, without the optional "iri" format check.
    """
    probe = ("import sys, jsonschema, jupyter_server.serverapp\n"
             "jsonschema.validate({'a': 1}, {'properties': {'a': {'type': 'integer'}}})\n"
             "print(sorted(m for m in ('rfc3987_syntax', 'lark') if m in sys.modules))")
    result = run_in_image(images["cpu"], "python", "-c", probe)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
