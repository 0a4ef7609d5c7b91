"""Personalised identities and the artifacts the grading service signs (pure parts)."""
import copy
import json

import pytest

from classroom_grading import integrity
from classroom_grading.export import artifact_columns
from classroom_grading.references import personalised, reference_file
from classroom_grading.identity import identity_json, personal_key
from classroom_grading.store import Store
from classroom_grading.integrity import recorded_figures
from tests.unit.test_grading import output, rec

SECRET = "a" * 64


def test_a_personal_key_depends_on_the_secret_the_term_and_the_person():
    key = personal_key(SECRET, "", "alice")
    assert len(key) == 64 and key == personal_key(SECRET, "", "alice")
    assert len({key, personal_key(SECRET, "", "bob"), personal_key(SECRET, "2027", "alice"),
                personal_key("b" * 64, "", "alice")}) == 4
    assert json.loads(identity_json(SECRET, "", "alice")) == {"student": "alice", "key": key}
    with pytest.raises(ValueError, match="identity_secret"):
        personal_key("", "", "alice")


def body(**changes):
    return {"kind": integrity.KIND, "course": "c", "assignment": "lab", "student": "alice", "submitted_at": "s",
            "score": 17.0, "max_score": 20.0, "short_hash": "abc", "notebooks": [
                {"name": "lab", "configuration": {"layers": 2}, "cells": [{"grade_id": "t", "score": 3.0}]}],
            **changes}


def test_a_signed_artifact_verifies_and_any_edit_or_other_key_fails():
    signed = integrity.sign(body(), SECRET)
    key = integrity.public_key(SECRET)
    assert integrity.verify(signed, key) == body()
    edits = [("score", 20.0), ("student", "bob")]
    for field, value in edits:
        forged = copy.deepcopy(signed)
        forged["artifact"][field] = value
        with pytest.raises(integrity.BadArtifact, match="does not match"):
            integrity.verify(forged, key)
    forged = copy.deepcopy(signed)
    forged["artifact"]["notebooks"][0]["configuration"]["layers"] = 3
    with pytest.raises(integrity.BadArtifact):
        integrity.verify(forged, key)
    # A forger signs with a key of their own and puts its public half in the document.
    own = integrity.sign(body(score=20.0), "forger")
    assert integrity.verify(own, integrity.public_key("forger"))
    with pytest.raises(integrity.BadArtifact, match="does not match"):
        integrity.verify(own, key)
    for bad in (None, [], {"artifact": body()}, {"artifact": body(kind="x"), "signature": "00"},
                {"artifact": body(), "signature": "zz"}):
        with pytest.raises(integrity.BadArtifact):
            integrity.verify(bad, key)


def test_the_verify_command_fails_on_a_forged_artifact(tmp_path, capsys):
    good, forged = tmp_path / "good.json", tmp_path / "forged.json"
    signed = integrity.sign(body(), SECRET)
    good.write_text(json.dumps(signed))
    signed["artifact"]["score"] = 20.0
    forged.write_text(json.dumps(signed))
    (tmp_path / "secret").write_text(SECRET + "\n")
    assert integrity.main(["verify", str(good), "--secret-file", str(tmp_path / "secret")]) == 0
    assert integrity.main(["verify", str(good), str(forged), "--public-key", integrity.public_key(SECRET)]) == 1
    out = capsys.readouterr().out
    assert "ok   " in out and f"FAIL {forged}" in out


def test_a_personalised_notebook_has_a_reference_per_student(tmp_path):
    assert personalised({"metadata": {"nncourse": {"personalised": "mlp2"}}}) == "mlp2"
    assert personalised({"metadata": {}}) == ""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "lab.json").write_text(json.dumps({"_personalised": "mlp2"}))
    (tmp_path / "a" / "plain.json").write_text(json.dumps({"t": {}}))
    assert reference_file(tmp_path, "a", "lab", "bob") == tmp_path / "a" / "lab" / "bob.json"
    assert reference_file(tmp_path, "a", "plain", "bob") == tmp_path / "a" / "plain.json"
    assert reference_file(tmp_path, "a", "missing", "bob") == tmp_path / "a" / "missing.json"


def test_artifacts_keep_single_numbers_and_short_texts_only():
    outputs = [output(rec("accuracy", [0.9], shape=[])), output(rec("weights", [1.0, 2.0])),
               output(rec("configuration", ['{"layers": 2}'], shape=[], dtype="text")),
               output(rec("loss", [1.0], shape=[])), output(rec("loss", [0.5], shape=[]))]
    assert recorded_figures(outputs) == {"accuracy": 0.9, "configuration": '{"layers": 2}', "loss": [1.0, 0.5]}


def test_the_grade_export_carries_configuration_and_artifact_hash(tmp_path):
    store = Store(tmp_path, "course")
    store.ensure()
    (store.exchange / "inbound" / "alice" / "lab" / "2026-11-30 10:00:00.000000 UTC").mkdir(parents=True)
    store.set_job("alice", "lab", "2026-11-30 10:00:00.000000 UTC", status="done",
                  artifact={"short_hash": "abc123", "configuration": {"layers": 2}})
    text = "assignment,student_id,score\nlab,alice,17\nlab,bob,3\n"
    rows = list(__import__("csv").DictReader(__import__("io").StringIO(artifact_columns(store, text))))
    assert rows[0]["configuration"] == '{"layers": 2}' and rows[0]["artifact_hash"] == "abc123"
    assert rows[1]["configuration"] == "" and rows[1]["artifact_hash"] == ""
