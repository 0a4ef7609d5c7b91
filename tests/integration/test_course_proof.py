"""Every course notebook, proved as the grading service grades it (course/prove.py).

The proof runs where the grading service runs: in the hub image, with the host's
Docker socket, so that each notebook runs in a sandbox container from the CPU image
the test deployment built (a sibling on the host's engine), with the service's
limits, in fast mode. Its sandboxes carry a label of the proof's own, which no
deployment removes; none may be left behind.
"""
import json
import subprocess
import uuid

from tests.integration.assignment import EXPLOITS
from tests.integration.fixtures import ARTIFACTS, REPO, run_in_image


def sandboxes(label: str) -> list[str]:
    """The containers, running or not, that carry the proof's deployment label."""
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.classroom.deployment={label}"],
                          capture_output=True, text=True, check=True).stdout.split()


def test_every_course_notebook_grades_as_the_service_grades_it_and_cheating_earns_nothing(images):
    """Graded through the service's sandbox and record verdict, does each notebook give its solution
    full marks, its untouched release zero, its attack zero and its substitute answers zero, within its
    budget, with every test cell recording what it checks, and leave no sandbox behind?"""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    label = f"course-proof-{uuid.uuid4().hex[:8]}"
    grader = f"{label}-grader"
    command = (f"python /repo/course/prove.py --executor docker --image {images['cpu']} --deployment {label} "
               "--report /tmp/report.json >&2; status=$?; cat /tmp/report.json; exit $status")
    try:
        result = run_in_image(images["hub"], "sh", "-c", command, mounts={REPO: "/repo"},
                              options=("--name", grader, "--workdir", "/tmp",
                                       "-v", "/var/run/docker.sock:/var/run/docker.sock"),
                              timeout=3600)
    finally:
        subprocess.run(["docker", "rm", "-f", grader], capture_output=True)
        left = sandboxes(label)
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
    (ARTIFACTS / "course-proof.txt").write_text(result.stderr)
    assert not left, f"the proof left {len(left)} sandbox container(s) behind"
    assert result.returncode == 0, result.stderr[-8000:]
    report = json.loads(result.stdout)
    (ARTIFACTS / "course-proof.json").write_text(json.dumps(report, indent=2))
    notebooks = report["notebooks"]

    sources = {p.relative_to(REPO / "course/source").as_posix() for p in (REPO / "course/source").glob("*/*.ipynb")}
    assert {f"{e['unit']}/{e['notebook']}" for e in notebooks} == sources
    for entry in notebooks:
        name = f"{entry['unit']}/{entry['notebook']}"
        assert entry["solution_score"] == entry["max_score"], f"{name}: the solution is not given full marks"
        assert entry["blank_score"] == 0, f"{name}: the untouched release scores"
        assert all(a["score"] == 0 for a in entry["attacks"].values()), f"{name}: an attack scores"
        assert not any(s["given"] for s in entry["substitutes"]), f"{name}: a substitute answer scores"
        if entry["copied"] is not None:  # personalised: a classmate's copy earns nothing that depends on it
            assert entry["copied"]["dependent_cells"], f"{name}: personalised, but nothing depends on the configuration"
            assert not entry["copied"]["dependent_cells_with_points"], f"{name}: a classmate's copy scores"
    attacked = {name for entry in notebooks for name in entry["attacks"]}
    assert attacked == set(EXPLOITS), f"attacks that ran on no notebook: {sorted(set(EXPLOITS) - attacked)}"
