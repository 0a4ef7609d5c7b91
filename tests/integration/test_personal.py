"""Personalised labs through the real service: each student's configuration comes from their hub
identity, their submission is graded against the solution run with that identity, a classmate's
configuration earns nothing, and the service signs what it graded.

The lab is tests/integration/personal_lab.py ("lab-personal"): alice and bob each hand in
their own work (full marks) and then work built with the other's configuration (zero).
"""
from __future__ import annotations

import csv
import io
import json
import sys

import pytest
import requests

from . import personal_lab as plab
from .fixtures import REPO, Person, docker, driver, wait_for
from .test_assignments import grading_url, release, submit_direct, tar_of, teacher  # noqa: F401 (a fixture)

sys.path.insert(0, str(REPO / "grading"))
from classroom_grading import integrity  # noqa: E402
from classroom_grading.identity import identity_json, personal_key  # noqa: E402

A = plab.ASSIGNMENT


@pytest.fixture(scope="module")
def released(deployment, teacher) -> str:
    return release(deployment, teacher, A, plab.NOTEBOOK, plab.source_notebook())


def secret(deployment, name: str) -> str:
    return (deployment.state_dir / "secrets" / name).read_text().strip()


def graded(deployment, teacher, student: str, stamp: str, timeout: float = 300) -> dict:
    def done():
        response = requests.get(grading_url(deployment, "api/progress"),
                                headers={"Authorization": f"token {teacher.token}"}, timeout=60)
        for sub in response.json()["assignments"].get(A, {}).get("submissions", []):
            if sub["student"] == student and sub["timestamp"] == stamp and sub["status"] in ("done", "failed"):
                return sub
        return None
    return wait_for(done, timeout, f"{student}'s submission {stamp} to be graded")


def test_each_student_passes_with_their_own_configuration_and_fails_with_the_others(
        deployment, teacher, released, explain):
    term = deployment.settings()["term"]
    people = {name: Person(deployment, name).start_session() for name in ("alice", "bob")}
    shown = {}
    for name, person in people.items():
        # Their server holds their own identity (never the secret), from which the lab's
        # "Student identifier" cell computes the configuration they see.
        env = docker("exec", deployment.container(name), "printenv", "NNCOURSE_IDENTITY")
        assert json.loads(env) == json.loads(identity_json(secret(deployment, "identity_secret"), term, name))
        assert secret(deployment, "identity_secret") not in docker("exec", deployment.container(name), "env")
        shown[name] = json.loads(person.run(
            "from nncourse.personal import lab_config\n"
            "SPACE = {'hidden_units': (3, 4, 5, 6, 7, 8), 'activation': ('relu', 'tanh'), 'seed': range(1, 1000)}\n"
            "print(lab_config('tiny', SPACE).as_text())").strip())
        assert shown[name]["student"] == name
    assert shown["alice"] != {**shown["bob"], "student": "alice"}, "two students got the same configuration"

    own = {name: submit_direct(deployment, person, tar_of(plab.student_notebook(), plab.NOTEBOOK), A).json()["timestamp"]
           for name, person in people.items()}
    for name in people:
        job = graded(deployment, teacher, name, own[name])
        assert (job["status"], job["score"], job["max_score"]) == ("done", plab.TOTAL_POINTS, plab.TOTAL_POINTS), job

    keys = {name: personal_key(secret(deployment, "identity_secret"), term, name) for name in people}
    copied = {"alice": plab.copied_notebook("bob", keys["bob"]), "bob": plab.copied_notebook("alice", keys["alice"])}
    stamps = {name: submit_direct(deployment, people[name], tar_of(nb, plab.NOTEBOOK), A).json()["timestamp"]
              for name, nb in copied.items()}
    for name in people:
        job = graded(deployment, teacher, name, stamps[name])
        assert (job["status"], job["score"]) == ("done", 0), f"{name} scored with a classmate's configuration: {job}"

    # The grader signed what it graded: each artifact verifies with the deployment's public key,
    # names the configuration the student was shown, and a forged copy fails.
    public = integrity.public_key(secret(deployment, "artifact_secret"))
    for name in people:
        response = requests.get(grading_url(deployment, f"api/assignments/{A}/artifacts/{name}.json"),
                                params={"timestamp": own[name]}, headers={"Authorization": f"token {teacher.token}"},
                                timeout=60)
        assert response.status_code == 200, response.text
        body = integrity.verify(response.json(), public)
        assert (body["student"], body["assignment"], body["score"]) == (name, A, plab.TOTAL_POINTS)
        notebook = body["notebooks"][0]
        assert notebook["configuration"] == shown[name]
        assert notebook["recorded"]["test-model"]["configuration"] == json.dumps(shown[name], sort_keys=True)
        path = deployment.state_dir / f"artifact-{name}.json"
        path.write_text(response.text)
        forged = response.json()
        forged["artifact"]["notebooks"][0]["configuration"] = shown["bob" if name == "alice" else "alice"]
        (deployment.state_dir / f"forged-{name}.json").write_text(json.dumps(forged))
        with pytest.raises(integrity.BadArtifact):
            integrity.verify(forged, public)
        # Students may not read anyone's artifact, their own included (the grader's record).
        denied = requests.get(grading_url(deployment, f"api/assignments/{A}/artifacts/{name}.json"),
                              headers={"Authorization": f"token {people[name].token}"}, timeout=60)
        assert denied.status_code == 403

    # One command verifies artifacts later, on the classroom's host.
    ok = driver("verify-artifact", str(deployment.state_dir / "artifact-alice.json"),
                str(deployment.state_dir / "artifact-bob.json"), "--config", str(deployment.config_file))
    assert ok.returncode == 0 and ok.stdout.count("ok   ") == 2, ok.stdout + ok.stderr
    bad = driver("verify-artifact", str(deployment.state_dir / "forged-alice.json"), "--config",
                 str(deployment.config_file))
    assert bad.returncode == 1 and "FAIL" in bad.stdout, bad.stdout + bad.stderr

    # Instructors see the configuration and the artifact beside each submission, and in the export.
    page = requests.get(grading_url(deployment, ""), headers={"Authorization": f"token {teacher.token}"}, timeout=60)
    assert f"hidden_units {shown['alice']['hidden_units']}" in page.text and public in page.text
    assert "artifact " in page.text
    export = requests.get(grading_url(deployment, "api/grades.csv"),
                          headers={"Authorization": f"token {teacher.token}"}, timeout=60)
    rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(io.StringIO(export.text))}
    # The export carries the latest graded submission's: the copied one, graded with alice's identity.
    assert json.loads(rows[(A, "alice")]["configuration"])["student"] == "alice"
    assert len(rows[(A, "alice")]["artifact_hash"]) == 12


def test_references_are_prepared_for_students_who_have_not_submitted(deployment, released, explain):
    """The service computes each student's solution run ahead of the deadline, while idle."""
    path = f"/srv/course/grading/reference/{A}/{plab.NOTEBOOK}/carol.json"
    wait_for(lambda: docker("exec", f"{deployment.name}-grading", "sh", "-c",
                            f"test -f {path} && echo yes || true") == "yes", 240,
             "carol's personalised reference to be prepared")
