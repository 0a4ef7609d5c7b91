"""Assignments end to end on the test instance: release, fetch, submit, sandboxed
autograde, gradebook, feedback; then every isolation case and every attack.

Students work through their own servers' nbgrader endpoints (what JupyterLab's
assignment list calls); the instructor works through the formgrader service and
the grading service, with their own hub token.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import tarfile
import threading
import time

import nbformat
import pytest
import requests

from . import assignment as lab
from .fixtures import REPO, Person, docker, run_in_image, wait_for

COURSE = "test-course"
A = lab.ASSIGNMENT


def grading_url(deployment, path: str) -> str:
    return f"{deployment.service_url('grading')}/{path}"


def formgrader(deployment, teacher: Person, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{deployment.service_url('formgrader')}/{path}",
                            headers={"Authorization": f"token {teacher.token}"}, timeout=300, **kwargs)


def progress(deployment, teacher: Person) -> dict:
    response = requests.get(grading_url(deployment, "api/progress"),
                            headers={"Authorization": f"token {teacher.token}"}, timeout=60)
    response.raise_for_status()
    return response.json()["assignments"]


def job_of(deployment, teacher: Person, student: str) -> dict | None:
    subs = [s for s in progress(deployment, teacher).get(A, {}).get("submissions", []) if s["student"] == student]
    return subs[-1] if subs else None


def wait_graded(deployment, teacher: Person, student: str, timeout: float = 300) -> dict:
    def finished():
        job = job_of(deployment, teacher, student)
        return job if job and job["status"] in ("done", "failed") else None
    return wait_for(finished, timeout, f"{student}'s submission to be graded")


def gradebook(deployment) -> dict[str, float]:
    """Scores by student, read from the course's nbgrader gradebook with nbgrader's API."""
    code = ("import json; from nbgrader.api import Gradebook\n"
            f"gb = Gradebook('sqlite:////srv/course/{COURSE}/gradebook.db', '{COURSE}')\n"
            f"print(json.dumps({{s.student.id: s.score for s in gb.find_assignment('{A}').submissions}}))")
    return json.loads(docker("exec", f"{deployment.name}-grading", "python3", "-c", code))


def tar_of(notebook: nbformat.NotebookNode, name: str = lab.NOTEBOOK) -> bytes:
    """The assignment folder holding `notebook` as NAME.ipynb, as the exchange plugin sends it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = nbformat.writes(notebook).encode()
        info = tarfile.TarInfo(f"{name}.ipynb")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def submit_direct(deployment, person: Person, payload: bytes, assignment: str = A) -> requests.Response:
    """What the exchange plugin sends: the assignment folder as a tar, with the person's token."""
    return requests.post(grading_url(deployment, f"api/assignments/{assignment}/submissions"), data=payload,
                         headers={"Authorization": f"token {person.token}"}, timeout=120)


@pytest.fixture(scope="module")
def teacher(deployment) -> Person:
    person = Person(deployment, "teacher")
    person.login()
    assert person.logged_in
    person.create_token()
    return person


def release(deployment, teacher: Person, assignment: str, notebook: str, source) -> str:
    """The instructor puts the source into the course, generates and releases it in the formgrader."""
    for folder in (COURSE, f"{COURSE}/source", f"{COURSE}/source/{assignment}"):
        formgrader(deployment, teacher, "PUT", f"api/contents/{folder}", json={"type": "directory"})
    put = formgrader(deployment, teacher, "PUT", f"api/contents/{COURSE}/source/{assignment}/{notebook}.ipynb",
                     json={"type": "notebook", "format": "json", "content": source})
    assert put.status_code in (200, 201), put.text
    formgrader(deployment, teacher, "POST", f"formgrader/api/assignment/{assignment}/unrelease")  # a kept deployment
    for step in ("assign", "release"):
        response = formgrader(deployment, teacher, "POST", f"formgrader/api/assignment/{assignment}/{step}")
        assert response.status_code == 200 and response.json().get("success"), f"{step}: {response.text}"
    return assignment


@pytest.fixture(scope="module")
def released(deployment, teacher) -> str:
    return release(deployment, teacher, A, lab.NOTEBOOK, lab.source_notebook())


def student_action(person: Person, action: str) -> dict:
    response = requests.post(f"{person.deployment.user_url(person.name)}/assignments/{action}",
                             data={"course_id": COURSE, "assignment_id": A},
                             headers={"Authorization": f"token {person.token}"}, timeout=300)
    response.raise_for_status()
    return response.json()


def test_release_fetch_submit_grade_feedback(deployment, teacher, released, explain):
    """The issue's flow: three students fetch; one submits a correct solution, one a
    partial one, one nothing; the service grades both; the gradebook holds 5 and 3;
    each feedback reaches its student only, without hidden tests."""
    people = {name: Person(deployment, name).start_session() for name in ("alice", "bob", "carol")}
    for person in people.values():
        listing = student_action(person, "fetch")
        assert any(a["assignment_id"] == A and a["status"] == "fetched" for a in listing["value"]), listing
        fetched = person.server_api("GET", f"/contents/{A}/{lab.NOTEBOOK}.ipynb")
        assert fetched.status_code == 200, f"{person.name} has no fetched notebook"
        assert "BEGIN SOLUTION" not in fetched.text and "BEGIN HIDDEN" not in fetched.text

    for name, answers in (("alice", lab.correct_answers()), ("bob", lab.partial_answers())):
        person = people[name]
        saved = person.server_api("PUT", f"/contents/{A}/{lab.NOTEBOOK}.ipynb", json={
            "type": "notebook", "format": "json", "content": lab.student_notebook(answers)})
        assert saved.status_code == 200, saved.text
        result = student_action(person, "submit")
        assert result["success"], result

    graded = {name: wait_graded(deployment, teacher, name) for name in ("alice", "bob")}
    assert graded["alice"]["status"] == "done", graded["alice"]
    assert (graded["alice"]["score"], graded["alice"]["max_score"]) == (5, 5), graded["alice"]
    assert graded["bob"]["score"] == 3, graded["bob"]
    assert job_of(deployment, teacher, "carol") is None

    scores = gradebook(deployment)
    assert scores["alice"] == 5 and scores["bob"] == 3, scores
    assert "carol" not in scores or scores["carol"] == 0

    feedback = {}
    for name, person in people.items():
        listing = student_action(person, "fetch_feedback")
        files = person.server_api("GET", f"/contents/{A}/feedback")
        if name == "carol":
            assert files.status_code == 404, "carol submitted nothing and got feedback"
            continue
        stamps = sorted(entry["name"] for entry in files.json()["content"])
        assert stamps, f"no feedback reached {name}"
        html = person.server_api("GET", f"/contents/{A}/feedback/{stamps[-1]}/{lab.NOTEBOOK}.html").json()["content"]
        feedback[name] = html
        assert "BEGIN HIDDEN TESTS" not in html and "relu of random 4x7" not in html, \
            f"{name}'s feedback shows hidden tests"
        assert listing["success"], listing
    assert "5.0" in feedback["alice"] and "/ 5" in feedback["alice"] or "5 / 5" in feedback["alice"]

    # Grades export as CSV from the gradebook.
    export = requests.get(grading_url(deployment, "api/grades.csv"),
                          headers={"Authorization": f"token {teacher.token}"}, timeout=60)
    assert export.status_code == 200, export.text
    rows = {row["student_id"]: row for row in csv.DictReader(io.StringIO(export.text)) if row["assignment"] == A}
    assert float(rows["alice"]["score"]) == 5 and float(rows["bob"]["score"]) == 3, rows


def test_feedback_and_submissions_are_each_students_own(deployment, teacher, released, explain):
    """Bob's token lists, fetches and submits only as bob; he cannot name alice anywhere."""
    bob = Person(deployment, "bob")
    bob.login()
    bob.create_token()
    headers = {"Authorization": f"token {bob.token}"}
    listing = requests.get(grading_url(deployment, "api/assignments"), headers=headers, timeout=60).json()
    alice_stamps = {s["timestamp"] for s in progress(deployment, teacher)[A]["submissions"] if s["student"] == "alice"}
    assert alice_stamps, "alice has not submitted yet"
    # Any attempt to name another student is ignored or refused: identity is the token's.
    before = len([s for s in progress(deployment, teacher)[A]["submissions"] if s["student"] == "alice"])
    for url in (f"api/assignments/{A}/submissions?student=alice", f"api/assignments/{A}/submissions?user=alice"):
        response = requests.post(grading_url(deployment, url), data=tar_of(lab.student_notebook(lab.blank_answers())),
                                 headers=headers, timeout=60)
        assert response.status_code == 201
    after = len([s for s in progress(deployment, teacher)[A]["submissions"] if s["student"] == "alice"])
    assert after == before, "bob's upload landed as alice's"
    listing = requests.get(grading_url(deployment, "api/assignments"), headers=headers, timeout=60).json()
    bobs = {s["timestamp"] for a in listing["assignments"] for s in a["submissions"]}
    assert bobs and not bobs & alice_stamps, "bob's listing shows alice's submissions"
    for path in (f"api/assignments/{A}/feedback.tar.gz?student=alice", "api/assignments/../alice/feedback.tar.gz"):
        response = requests.get(grading_url(deployment, path), headers=headers, timeout=60)
        if response.status_code == 200:
            names = tarfile.open(fileobj=io.BytesIO(response.content)).getnames()
            assert names and all(name.split("/")[0] in bobs for name in names), names
    # Instructors' endpoints refuse students.
    for method, path in (("GET", "api/progress"), ("GET", "api/grades.csv"), ("PUT", f"api/assignments/{A}/settings"),
                         ("POST", f"api/assignments/{A}/regrade")):
        response = requests.request(method, grading_url(deployment, path), headers=headers, data=b"{}", timeout=60)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
    # Without a token nothing answers; with a forged one neither.
    for token in (None, "not-a-token"):
        response = requests.get(grading_url(deployment, "api/assignments"), allow_redirects=False, timeout=60,
                                headers={"Authorization": f"token {token}"} if token else {})
        assert response.status_code in (302, 401, 403), response.status_code


def test_no_student_container_reaches_the_course_volume(deployment, released, explain):
    """Student servers mount only their home (and data): no course volume, no socket,
    no shared exchange folder, and no world-writable folder outside the scratch ones."""
    alice = Person(deployment, "alice").start_session()
    mounts = json.loads(docker("inspect", "--format", "{{json .Mounts}}", deployment.container("alice")))
    assert [m["Destination"] for m in mounts if m["Destination"] != "/srv/course-data"] == ["/home/jovyan"], mounts
    output = alice.run("import os, subprocess\n"
                       "print(os.path.exists('/srv/course/test-course'), os.path.exists('/var/run/docker.sock'))\n"
                       "print(subprocess.run(['find', '/', '-xdev', '-type', 'd', '-perm', '-0002', '-not', '-path', '/tmp*',"
                       " '-not', '-path', '/var/tmp*', '-not', '-path', '/run/lock', '-not', '-path', '/dev/*', '-not', '-path', '/proc/*'],"
                       " capture_output=True, text=True).stdout.strip() or 'none')")
    assert output.split() == ["False", "False", "none"], output


def test_bad_uploads_get_clear_errors(deployment, released, explain):
    carol = Person(deployment, "carol")
    carol.login()
    carol.create_token()
    cases = {
        b"not a tar": "not a tar archive",
        _tar_with("../../escape.ipynb"): "only relative paths",
        _tar_with("notes.txt"): "holds no notebook",
    }
    for payload, message in cases.items():
        response = submit_direct(deployment, carol, payload)
        assert response.status_code == 400 and message in response.json()["error"], response.text
    response = submit_direct(deployment, carol, _tar_with("lab.ipynb"), assignment="no-such-lab")
    assert response.status_code == 400 and "not released" in response.json()["error"]
    response = submit_direct(deployment, carol, _tar_with("lab.ipynb"), assignment="..")
    assert response.status_code in (400, 404)


def _tar_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def attacks(deployment, teacher, released):
    """One attacker per exploit submits at once; returns each one's graded job."""
    names = sorted(lab.EXPLOITS)
    people = {}
    for i, exploit in enumerate(names, start=1):
        person = Person(deployment, f"mallory{i}")
        person.login()
        person.create_token()
        response = submit_direct(deployment, person, tar_of(lab.student_notebook(lab.EXPLOITS[exploit]())))
        assert response.status_code == 201, response.text
        people[exploit] = person
    return {exploit: wait_graded(deployment, teacher, person.name, timeout=600) for exploit, person in people.items()}


@pytest.mark.parametrize("exploit", sorted(lab.EXPLOITS))
def test_attack_scores_nothing(deployment, attacks, exploit, explain):
    job = attacks[exploit]
    assert job["status"] in ("done", "failed"), job
    assert job.get("score") in (0, None), f"{exploit} scored {job.get('score')}: {job}"
    scores = gradebook(deployment)
    assert scores.get(f"mallory{sorted(lab.EXPLOITS).index(exploit) + 1}", 0) == 0, scores


def test_grader_survives_the_attacks(deployment, teacher, attacks, explain):
    """After every attack the service still grades: a correct submission scores full marks."""
    carol = Person(deployment, "carol")
    carol.login()
    carol.create_token()
    response = submit_direct(deployment, carol, tar_of(lab.student_notebook(lab.correct_answers())))
    assert response.status_code == 201, response.text
    stamp = response.json()["timestamp"]
    job = wait_for(lambda: next((s for s in progress(deployment, teacher)[A]["submissions"]
                                 if s["student"] == "carol" and s["timestamp"] == stamp
                                 and s["status"] in ("done", "failed")), None), 300, "carol's grading")
    assert job["status"] == "done" and job["score"] == 5, job
    # Each worker keeps one started sandbox ready for the next notebook and removes it after
    # 30 s idle; the used ones are removed at once. None may stay.
    wait_for(lambda: docker("ps", "-aq", "--filter", "label=org.classroom.role=sandbox") == "", 120,
             "every sandbox container to be removed")


def test_deadline_needs_a_time_zone_and_lateness_uses_server_time(deployment, teacher, released, explain):
    headers = {"Authorization": f"token {teacher.token}"}
    bad = requests.put(grading_url(deployment, f"api/assignments/{A}/settings"), headers=headers,
                       json={"deadline": "2026-12-01T17:00:00"}, timeout=60)
    assert bad.status_code == 400 and "time zone" in bad.json()["error"]
    past = requests.put(grading_url(deployment, f"api/assignments/{A}/settings"), headers=headers,
                        json={"deadline": "2020-01-01T09:00:00 Europe/Berlin"}, timeout=60)
    assert past.status_code == 200 and past.json()["deadline"] == "2020-01-01T09:00:00+01:00", past.text
    alice = Person(deployment, "alice")
    alice.login()
    alice.create_token()
    response = submit_direct(deployment, alice, tar_of(lab.student_notebook(lab.correct_answers())))
    stamp = response.json()["timestamp"]
    job = wait_for(lambda: next((s for s in progress(deployment, teacher)[A]["submissions"]
                                 if s["student"] == "alice" and s["timestamp"] == stamp
                                 and s["status"] in ("done", "failed")), None), 300, "alice's late grading")
    expected = time.time() - 1577865600  # seconds since 2020-01-01 08:00 UTC
    assert job["status"] == "done" and abs(job["seconds_late"] - expected) < 600, job
    requests.put(grading_url(deployment, f"api/assignments/{A}/settings"), headers=headers,
                 json={"deadline": None}, timeout=60)


def in_gradebook(deployment, code: str) -> str:
    """Run Python against the course's gradebook in the grading container, as the formgrader would."""
    prelude = (f"from nbgrader.api import Gradebook\n"
               f"gb = Gradebook('sqlite:////srv/course/{COURSE}/gradebook.db', '{COURSE}')\n")
    return docker("exec", f"{deployment.name}-grading", "python3", "-c", prelude + code)


def test_the_gradebook_owns_due_dates_and_scores(deployment, teacher, released, explain):
    """A due date set in the formgrader survives grading; a hand grade shows on the grading page."""
    in_gradebook(deployment, f"import datetime as dt\n"
                             f"gb.update_or_create_assignment('{A}', duedate=dt.datetime(2031, 5, 6, 7, 8))\n")
    bob = Person(deployment, "bob")
    bob.login()
    bob.create_token()
    stamp = submit_direct(deployment, bob, tar_of(lab.student_notebook(lab.correct_answers()))).json()["timestamp"]
    job = wait_for(lambda: next((s for s in progress(deployment, teacher)[A]["submissions"]
                                 if s["student"] == "bob" and s["timestamp"] == stamp
                                 and s["status"] in ("done", "failed")), None), 300, "bob's grading")
    assert job["status"] == "done" and job["score"] == 5, job
    assert progress(deployment, teacher)[A]["deadline"] == "2031-05-06T07:08:00+00:00"
    assert in_gradebook(deployment, f"print(gb.find_assignment('{A}').duedate)") == "2031-05-06 07:08:00"
    # The instructor takes a point off by hand, in the formgrader: the grading page follows.
    in_gradebook(deployment, f"g = gb.find_grade('test-mse', '{lab.NOTEBOOK}', '{A}', 'bob')\n"
                             "g.manual_score = 1\ngb.db.commit()\n")
    row = next(s for s in progress(deployment, teacher)[A]["submissions"]
               if s["student"] == "bob" and s["timestamp"] == stamp)
    assert row["score"] == 4 and row["in_gradebook"], row
    requests.put(grading_url(deployment, f"api/assignments/{A}/settings"), json={"deadline": None}, timeout=60,
                 headers={"Authorization": f"token {teacher.token}"}).raise_for_status()
    assert progress(deployment, teacher)[A]["deadline"] is None


def test_the_formgraders_autograde_button_refuses_and_keeps_the_graded_copy(deployment, teacher, released, explain):
    """Autograding belongs to the grading service: the formgrader's button says so, and
    alice's graded copy stays for hand grading."""
    response = formgrader(deployment, teacher, "POST", f"formgrader/api/submission/{A}/alice/autograde")
    assert response.status_code == 200 and not response.json()["success"], response.text
    assert "grading service" in response.json()["error"]
    listed = docker("exec", f"{deployment.name}-formgrader", "ls", f"/srv/course/{COURSE}/autograded/alice/{A}")
    assert f"{lab.NOTEBOOK}.ipynb" in listed.split()


def test_the_grading_page_reads_scores_while_resubmissions_replace_them(images):
    """While a worker replaces a student's submission in the gradebook (a resubmission being
    graded), does every read of the scores the grading page shows succeed, with each row whole?
    (The page read each submission's fields in separate statements and answered 500 when the
    row went in between.)"""
    result = run_in_image(images["hub"], "python", "/tests/gradebook_readers.py", "/grading", "10",
                          mounts={REPO / "tests/integration": "/tests", REPO / "grading": "/grading"}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def with_tokens(deployment, names: list[str]) -> list[Person]:
    """Each named student logged in, with an API token of their own."""
    people = [Person(deployment, name) for name in names]
    for person in people:
        person.login()
        person.create_token()
    return people


def test_a_deadline_burst_beside_hand_grading_loses_no_grade(deployment, teacher, released, explain):
    """Submissions at twice the worker count arrive at once while the instructor grades by hand
    in the formgrader: every write to the one SQLite gradebook lands ("database is locked"
    nowhere), and each student has exactly their score."""
    students = ["alice", "carol", "dana", "ivan"][: 2 * deployment.config["grading"]["workers"]]
    people = with_tokens(deployment, students)
    listed = formgrader(deployment, teacher, "GET", f"formgrader/api/submitted_notebooks/{A}/{lab.NOTEBOOK}")
    bob_notebook = next(n for n in listed.json() if n["student"] == "bob")
    hand_graded = next(g for g in formgrader(deployment, teacher, "GET", "formgrader/api/grades",
                                             params={"submission_id": bob_notebook["id"]}).json()
                       if g["name"] == "test-mse")
    payload = tar_of(lab.student_notebook(lab.correct_answers()))
    stamps: dict[str, str] = {}
    threads = [threading.Thread(target=lambda p=p: stamps.__setitem__(
        p.name, submit_direct(deployment, p, payload).json()["timestamp"])) for p in people]
    for thread in threads:
        thread.start()
    failures, writes = [], 0

    def all_graded() -> bool:
        rows = progress(deployment, teacher)[A]["submissions"]
        return all(any(r["student"] == name and r["timestamp"] == stamps.get(name)
                       and r["status"] in ("done", "failed") for r in rows) for name in students)

    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # the instructor keeps grading bob by hand meanwhile
        writes += 1
        response = formgrader(deployment, teacher, "PUT", f"formgrader/api/grade/{hand_graded['id']}",
                              json={"manual_score": writes % 2})
        if response.status_code != 200:
            failures.append(response.text[-300:])
        if all(not t.is_alive() for t in threads) and all_graded():
            break
    for thread in threads:
        thread.join()
    final = formgrader(deployment, teacher, "PUT", f"formgrader/api/grade/{hand_graded['id']}",
                       json={"manual_score": 1})
    assert final.status_code == 200 and not failures, failures[:3]
    assert writes >= 5, f"only {writes} hand-grade writes during the burst"
    rows = progress(deployment, teacher)[A]["submissions"]
    for name in students:
        row = next(r for r in rows if r["student"] == name and r["timestamp"] == stamps[name])
        assert row["status"] == "done" and row["score"] == lab.TOTAL_POINTS, row
    scores = gradebook(deployment)
    assert all(scores[name] == lab.TOTAL_POINTS for name in students), scores
    assert scores["bob"] == lab.TOTAL_POINTS - 1  # the last hand grade stands
    for service in ("grading", "formgrader"):
        logs = subprocess.run(["docker", "logs", f"{deployment.name}-{service}"],
                              capture_output=True, text=True)
        assert "database is locked" not in logs.stdout + logs.stderr, service


def test_a_grading_service_killed_mid_batch_resumes_and_grades_each_submission_once(deployment, teacher,
                                                                                    released, explain):
    """The grading service's process dies (SIGKILL from the host, like the OOM killer) while a
    batch is queued and running: its restart policy brings it back, it picks up every queued and
    running job, and each student ends with one right score, the same in the gradebook."""
    students = ["alice", "carol", "dana", "ivan"]
    people = with_tokens(deployment, students)
    payload = tar_of(lab.student_notebook(lab.correct_answers()))
    stamps = {p.name: submit_direct(deployment, p, payload).json()["timestamp"] for p in people}
    wait_for(lambda: any(r["status"] == "running" and stamps.get(r["student"]) == r["timestamp"]
                         for r in progress(deployment, teacher)[A]["submissions"]), 120, "a grading to start")
    container = f"{deployment.name}-grading"
    restarts = int(docker("inspect", "--format", "{{.RestartCount}}", container))
    pid = int(docker("inspect", "--format", "{{.State.Pid}}", container))
    subprocess.run(["kill", "-9", str(pid)], check=True)
    wait_for(lambda: int(docker("inspect", "--format", "{{.RestartCount}}", container)) > restarts, 120,
             "the grading service to be restarted")

    def finished():
        rows = progress(deployment, teacher)[A]["submissions"]
        mine = [r for r in rows if stamps.get(r["student"]) == r["timestamp"]]
        return mine if len(mine) == len(students) and all(r["status"] in ("done", "failed") for r in mine) else None
    rows = wait_for(finished, 400, "every submission of the batch to be graded after the restart")
    assert all(r["status"] == "done" and r["score"] == lab.TOTAL_POINTS for r in rows), rows
    scores = gradebook(deployment)
    assert all(scores[name] == lab.TOTAL_POINTS for name in students), scores
    # the killed service's sandboxes are gone; only the new one's (spares kept warm) remain
    restarted_at = docker("inspect", "--format", "{{.State.StartedAt}}", container)
    sandboxes = docker("ps", "-aq", "--filter", f"label=org.classroom.deployment={deployment.name}",
                       "--filter", "label=org.classroom.role=sandbox").split()
    created = [subprocess.run(["docker", "inspect", "--format", "{{.Created}}", box],  # gone meanwhile: ""
                              capture_output=True, text=True).stdout.strip() or "9999" for box in sandboxes]
    assert all(when > restarted_at for when in created), (restarted_at, created)
