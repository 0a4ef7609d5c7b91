"""A whole class under load, for `make bench`: 60 students at once, each through every step a
student takes for an assignment, as their browser would.

Each student, in their own thread, all starting together:

1. login: the login form, until their JupyterLab answers (servers prestarted, as before a class);
2. fetch: the assignment, through their server's nbgrader endpoint;
3. edit: their answers saved into the fetched notebook (correct, partial or blank, in turn);
4. submit: through their server, to the grading service;
5. feedback: from the submit until their feedback has been fetched into their server.

Reported: how many completed every step, p50 and p95 of each step, and whether the course's
gradebook holds exactly one score per student, the right one for what they handed in.
"""
from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests

from tests.bench import grading_bench
from tests.integration import assignment as lab
from tests.integration.fixtures import Person, docker

STEPS = ("login", "fetch", "edit", "submit", "feedback")
KINDS = {"correct": (lab.correct_answers, lab.TOTAL_POINTS), "partial": (lab.partial_answers, 3),
         "blank": (lab.blank_answers, 0)}


def _action(person: Person, course: str, action: str) -> dict:
    response = requests.post(f"{person.deployment.user_url(person.name)}/assignments/{action}",
                             data={"course_id": course, "assignment_id": lab.ASSIGNMENT},
                             headers={"Authorization": f"token {person.token}"}, timeout=600)
    response.raise_for_status()
    result = response.json()
    if not result.get("success", True):
        raise RuntimeError(f"{action}: {str(result)[:300]}")
    return result


def one_student(deployment, name: str, kind: str, course: str, start: Barrier,
                timeout: float = 900) -> dict:
    """Take one student through every step; returns each step's seconds, or where it failed."""
    person = Person(deployment, name)
    answers = KINDS[kind][0]()
    times: dict[str, float] = {}
    start.wait()
    step = "login"
    try:
        began = time.monotonic()
        person.login()
        person.create_token()
        person.wait_ready(timeout)
        lab_url = f"{deployment.user_url(name)}/lab"
        while person.session.get(lab_url, timeout=timeout).status_code != 200:
            time.sleep(0.25)
        times["login"] = time.monotonic() - began

        step = "fetch"
        began = time.monotonic()
        _action(person, course, "fetch")
        times["fetch"] = time.monotonic() - began

        step = "edit"
        began = time.monotonic()
        saved = person.server_api("PUT", f"/contents/{lab.ASSIGNMENT}/{lab.NOTEBOOK}.ipynb", json={
            "type": "notebook", "format": "json", "content": lab.student_notebook(answers)})
        saved.raise_for_status()
        times["edit"] = time.monotonic() - began

        step = "submit"
        began = time.monotonic()
        _action(person, course, "submit")
        submitted = time.monotonic()
        times["submit"] = submitted - began

        step = "feedback"
        while time.monotonic() - submitted < timeout:
            _action(person, course, "fetch_feedback")
            folder = person.server_api("GET", f"/contents/{lab.ASSIGNMENT}/feedback")
            if folder.status_code == 200 and folder.json()["content"]:
                times["feedback"] = time.monotonic() - submitted
                return {"student": name, "kind": kind, "times": times, "failed_at": None}
            time.sleep(2)
        raise TimeoutError(f"no feedback after {timeout} s")
    except Exception as error:  # noqa: BLE001 - a failure is a figure here
        print(f"  {name}: {step} failed: {error}", file=sys.stderr)
        return {"student": name, "kind": kind, "times": times, "failed_at": step}


def gradebook_scores(deployment, course: str) -> dict[str, list[float]]:
    """Every score the gradebook holds for the assignment, per student (a list: more than one
    would be a duplicate)."""
    code = ("import json, collections; from nbgrader.api import Gradebook\n"
            f"gb = Gradebook('sqlite:////srv/course/{course}/gradebook.db', '{course}')\n"
            "scores = collections.defaultdict(list)\n"
            f"[scores[s.student.id].append(s.score) for s in gb.find_assignment('{lab.ASSIGNMENT}').submissions]\n"
            "print(json.dumps(scores))")
    import json

    return json.loads(docker("exec", f"{deployment.name}-grading", "python3", "-c", code))


def run(deployment, students: list[str], teacher_name: str = "teacher") -> dict:
    """The whole class at once, on an assignment released for the occasion."""
    course = deployment.config["course_id"]
    teacher = Person(deployment, teacher_name)
    teacher.login()
    teacher.create_token()
    grading_bench.release(deployment, teacher, course)
    kinds = list(KINDS)
    start = Barrier(len(students))
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(students)) as pool:
        results = list(pool.map(lambda pair: one_student(deployment, pair[1], kinds[pair[0] % len(kinds)],
                                                         course, start), enumerate(students)))
    wall = time.monotonic() - began
    steps = {}
    for step in STEPS:
        values = [r["times"][step] for r in results if step in r["times"]]
        steps[step] = {"done": len(values),
                       "p50_s": round(statistics.median(values), 2) if values else None,
                       "p95_s": round(grading_bench.percentile(values, 0.95), 2) if values else None}
    scores = gradebook_scores(deployment, course)
    wrong = [r["student"] for r in results
             if r["failed_at"] is None and scores.get(r["student"]) != [KINDS[r["kind"]][1]]]
    return {"students": len(students), "completed": sum(r["failed_at"] is None for r in results),
            "failed_at": {r["student"]: r["failed_at"] for r in results if r["failed_at"]},
            "wall_s": round(wall, 1), "steps": steps,
            "gradebook_exactly_one_right_score": not wrong, "wrong_in_gradebook": wrong}


def main(argv: list[str] | None = None) -> int:
    """Only this benchmark, on the bench instance: `python -m tests.bench.class_bench [--students N]`
    (`make bench` runs it with 60 among the others)."""
    import argparse
    import json

    from tests.bench.bench import BENCH_CONFIG, prestart
    from tests.integration.fixtures import deploy, driver

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--students", type=int, default=60)
    args = parser.parse_args(argv)
    deployment = deploy(BENCH_CONFIG)
    students = [f"s{i:02d}" for i in range(1, args.students + 1)]
    try:
        prestarted = prestart(deployment, students)
        result = run(deployment, students)
    finally:
        driver("remove", "--config", str(BENCH_CONFIG), "--delete-volumes")
    print(json.dumps({"prestart_s": round(prestarted, 1), **result}, indent=2))
    return 0 if result["completed"] == result["students"] and result["gradebook_exactly_one_right_score"] else 1


if __name__ == "__main__":
    sys.exit(main())
