"""Every course notebook, proved inside the CPU image the students use (course/prove.py)."""
import json
from pathlib import Path

from tests.integration.fixtures import ARTIFACTS, REPO, run_in_image


def test_every_course_notebook_grades_full_with_solutions_and_zero_untouched_within_budget(images):
    """Does each notebook, in fast mode, get full marks from nbgrader's autograder with its solutions,
    zero without them, run to the end either way, and stay within its time budget?"""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result = run_in_image(
        images["cpu"], "sh", "-c",
        "python /course/prove.py --workdir /tmp/prove --report /tmp/report.json >&2; status=$?; "
        "cat /tmp/report.json; exit $status",
        mounts={REPO / "course": "/course"},
        options=("--workdir", "/tmp", "--cpus", "2"),
        timeout=3600)
    (ARTIFACTS / "course-proof.txt").write_text(result.stderr)
    assert result.returncode == 0, result.stderr[-8000:]
    report = json.loads(result.stdout)
    units = {entry["unit"] for entry in report}
    assert {"u01-tensors", "u02-autograd", "u03-nn-from-scratch"} <= units
    sources = {p.relative_to(REPO / "course/source").as_posix() for p in (REPO / "course/source").glob("*/*.ipynb")}
    assert {f"{e['unit']}/{e['notebook']}" for e in report} == sources
