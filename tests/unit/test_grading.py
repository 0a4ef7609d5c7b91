"""The grading service's pure parts: record comparison and the course volume's safety checks."""
import csv
import io
import json
import tarfile

import pytest

from classroom_grading import RECORD_MIME, records
from classroom_grading.export import inert_csv
from tests.integration.assignment import archive
from classroom_grading.harness import seal, unseal
from classroom_grading.store import (Store, StoreError, TooLarge, TooMany, UploadLimits, parse_deadline,
                                     to_nbgrader_timestamp, untar)


def rec(name, values, shape=None, dtype="float", tol=1e-6):
    return {"name": name, "tol": tol, "dtype": dtype, "shape": shape if shape is not None else [len(values)],
            "values": values}


def output(record):
    return {"output_type": "display_data", "metadata": {}, "data": {RECORD_MIME: record, "text/plain": "r"}}


def test_a_matching_record_passes_and_a_wrong_one_fails():
    reference = {"y": [records.parse(rec("y", [1.0, 2.0]))]}
    assert records.verdict(reference, records.from_outputs([output(rec("y", [1.0, 2.0000001]))])) == []
    assert records.verdict(reference, records.from_outputs([output(rec("y", [1.0, 2.1]))]))


def test_a_missing_record_fails_the_cell():
    reference = {"y": [records.parse(rec("y", [1.0]))]}
    problems = records.verdict(reference, {})
    assert problems and "no value was recorded" in problems[0]


def test_a_forged_extra_record_cannot_hide_a_wrong_one():
    reference = {"y": [records.parse(rec("y", [1.0]))]}
    outputs = [output(rec("y", [1.0])), output(rec("y", [5.0]))]
    assert records.verdict(reference, records.from_outputs(outputs))


def test_the_tolerance_is_the_references_not_the_submissions():
    reference = {"y": [records.parse(rec("y", [1.0], tol=1e-6))]}
    loose = rec("y", [1.5], tol=10.0)
    assert records.verdict(reference, records.from_outputs([output(loose)]))


@pytest.mark.parametrize("bad", [
    {"name": "y", "dtype": "float", "shape": [2], "values": [1.0]},          # shape and values disagree
    {"name": "y", "dtype": "float", "shape": [1], "values": ["1.0"]},        # a string as a float
    {"name": "", "dtype": "float", "shape": [], "values": [1.0]},
    {"name": "y", "dtype": "pickle", "shape": [], "values": [1]},
    "not an object",
])
def test_malformed_records_are_ignored(bad):
    assert records.from_outputs([output(bad)]) == {}


def test_shapes_dtypes_and_non_finite_values_compare_exactly():
    assert records.matches(records.parse(rec("n", ["nan"])), records.parse(rec("n", ["nan"])))
    assert not records.matches(records.parse(rec("n", [1.0, 2.0], shape=[2])),
                               records.parse(rec("n", [1.0, 2.0], shape=[1, 2])))
    assert not records.matches(records.parse(rec("b", [True], dtype="bool")),
                               records.parse(rec("b", [1], dtype="int")))


def tar(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                archive.addfile(info)
            else:
                info.size = 2
                archive.addfile(info, io.BytesIO(b"{}"))
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["../evil.ipynb", "/etc/evil.ipynb", "a/../../evil.ipynb"])
def test_uploads_cannot_escape(tmp_path, name):
    with pytest.raises(StoreError, match="only relative paths"):
        untar(tar([(name, "file")]), tmp_path / "dest")


def test_links_in_uploads_are_dropped(tmp_path):
    written = untar(tar([("lab.ipynb", "file"), ("passwd", "link")]), tmp_path)
    assert written == ["lab.ipynb"] and not (tmp_path / "passwd").exists()


def test_oversized_uploads_are_refused(tmp_path):
    with pytest.raises(TooLarge, match="more than 1 files and folders"):
        untar(tar([("a.ipynb", "file"), ("b.ipynb", "file")]), tmp_path, UploadLimits(max_entries=1))
    assert not any(tmp_path.iterdir())


def test_a_small_upload_that_unpacks_to_a_flood_is_refused_before_anything_is_written(tmp_path):
    """Does a 50 KB archive of 48 MiB of zeros fail on the unpacked-size limit, writing nothing?"""
    payload = archive([("lab.ipynb", 2), ("zeros.bin", 48 * 2**20)])
    assert len(payload) < 100_000
    with pytest.raises(TooLarge, match="unpacks to more than"):
        untar(payload, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_folders_count_against_the_entry_limit(tmp_path):
    """Does an archive of 50,000 empty folders fail at the entry limit, before creating any?"""
    payload = archive([(f"d{i}", None) for i in range(50_000)])
    with pytest.raises(TooLarge, match="more than 500 files and folders"):
        untar(payload, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_deep_paths_and_odd_names_are_refused(tmp_path):
    with pytest.raises(StoreError, match="levels deep"):
        untar(tar([("/".join("abcdefgh") + "/x.ipynb", "file")]), tmp_path / "a")
    for name in ['"><img src=x onerror=alert(1)>.ipynb', "-rf.ipynb", ".hidden", "a\nb.ipynb", "<script>"]:
        with pytest.raises(StoreError, match="rename it"):
            untar(tar([(name, "file")]), tmp_path / "b")
    assert untar(tar([("Lab 1 (final).ipynb", "file"), ("data/x_1.csv", "file")]), tmp_path / "c") == [
        "Lab 1 (final).ipynb", "data/x_1.csv"]


def test_a_broken_archive_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="not a tar archive"):
        untar(b"\x1f\x8b" + b"junk" * 100, tmp_path)
    with pytest.raises(StoreError, match="not a tar archive"):
        untar(tar([("lab.ipynb", "file")])[:-40], tmp_path)


def released_store(tmp_path) -> Store:
    store = Store(tmp_path, "course")
    store.ensure()
    (store.exchange / "outbound" / "lab").mkdir()
    return store


def test_submissions_are_rate_limited_per_student(tmp_path):
    store = released_store(tmp_path)
    limits = UploadLimits(per_minute=2)
    store.receive("alice", "lab", tar([("lab.ipynb", "file")]), limits)
    store.receive("alice", "lab", tar([("lab.ipynb", "file")]), limits)
    with pytest.raises(TooMany, match="wait"):
        store.receive("alice", "lab", tar([("lab.ipynb", "file")]), limits)
    store.receive("bob", "lab", tar([("lab.ipynb", "file")]), limits)  # others are not slowed


def test_a_student_over_quota_is_refused_and_others_are_not(tmp_path):
    store = released_store(tmp_path)
    limits = UploadLimits(quota=3 * 2**20, keep=10)
    big = archive([("lab.ipynb", 2), ("data.bin", 2 * 2**20)])
    store.receive("alice", "lab", big, limits)
    with pytest.raises(TooLarge, match="quota"):
        store.receive("alice", "lab", big, limits)
    assert len(store.submissions("alice", "lab")) == 1
    store.receive("bob", "lab", big, limits)


def test_superseded_submissions_are_pruned_but_their_grading_record_stays(tmp_path):
    store = released_store(tmp_path)
    limits = UploadLimits(keep=2)
    stamps = []
    for _ in range(4):
        stamps.append(store.receive("alice", "lab", tar([("lab.ipynb", "file")]), limits))
        store.set_job("alice", "lab", stamps[-1], status="done", score=1)
    assert store.submissions("alice", "lab") == stamps[-2:]
    assert store.job("alice", "lab", stamps[0])["pruned"] is True
    assert store.job("alice", "lab", stamps[0])["score"] == 1


def test_a_submission_being_graded_is_never_pruned(tmp_path):
    store = released_store(tmp_path)
    limits = UploadLimits(keep=1)
    first = store.receive("alice", "lab", tar([("lab.ipynb", "file")]), limits)
    store.set_job("alice", "lab", first, status="running")
    second = store.receive("alice", "lab", tar([("lab.ipynb", "file")]), limits)
    assert store.submissions("alice", "lab") == [first, second]


def test_only_the_harness_sealed_result_is_accepted():
    """Does a result forged by another process (no key), or tampered with, fail to unseal?"""
    key, other = "ab" * 32, "cd" * 32
    body = json.dumps({"cells": []}).encode()
    assert unseal(seal(body, key), key) == body
    assert unseal(seal(body, key) + b"trailing junk from the kernel", key) == body
    assert unseal(seal(body, other), key) is None
    assert unseal(b'{"cells": []}', key) is None
    assert unseal(b"forged\n" + seal(body, key), key) is None
    sealed = bytearray(seal(body, key))
    sealed[-3] ^= 1
    assert unseal(bytes(sealed), key) is None


def test_the_grade_export_quotes_formulas_and_keeps_numbers():
    text = 'student_id,first_name,score\nalice,=HYPERLINK("http://x";"y"),-1.5\nbob,@SUM(A1),3\n'
    rows = list(csv.reader(io.StringIO(inert_csv(text))))
    assert rows[1] == ["alice", "'=HYPERLINK(\"http://x\";\"y\")", "-1.5"]
    assert rows[2] == ["bob", "'@SUM(A1)", "3"]


def test_a_submission_is_stamped_with_server_time_and_kept(tmp_path):
    store = Store(tmp_path, "course")
    store.ensure()
    with pytest.raises(StoreError, match="not released"):
        store.receive("alice", "lab", tar([("lab.ipynb", "file")]))
    (store.exchange / "outbound" / "lab").mkdir()
    stamp = store.receive("alice", "lab", tar([("lab.ipynb", "file"), ("timestamp.txt", "file")]))
    folder = store.exchange / "inbound" / "alice" / "lab" / stamp
    assert (folder / "timestamp.txt").read_text() == to_nbgrader_timestamp(stamp)  # the client's is replaced
    assert store.submissions("alice", "lab") == [stamp] and store.submissions("bob", "lab") == []
    with pytest.raises(StoreError, match="not a valid name"):
        store.receive("../bob", "lab", tar([("lab.ipynb", "file")]))


def test_deadlines_need_a_time_zone():
    assert parse_deadline("2026-12-01T17:00:00+01:00") == "2026-12-01T17:00:00+01:00"
    assert parse_deadline("2026-12-01T17:00:00 Europe/Berlin") == "2026-12-01T17:00:00+01:00"
    assert parse_deadline(None) is None
    for bad in ("2026-12-01T17:00:00", "tomorrow", "2026-12-01T17:00:00 Mars/Olympus", 5):
        with pytest.raises(StoreError):
            parse_deadline(bad)


def test_settings_are_validated(tmp_path):
    store = Store(tmp_path, "course")
    store.ensure()
    assert store.update_settings("lab", {"autograde": False})["autograde"] is False
    for bad in ({"autograde": "no"}, {"feedback": "later"}, {"colour": 1}):
        with pytest.raises(StoreError):
            store.update_settings("lab", bad)
    assert json.loads((store.state / "settings.json").read_text())["lab"]["autograde"] is False


def test_test_cells_whose_solution_records_nothing_are_reported_unprotected(tmp_path):
    store = released_store(tmp_path)
    reference = store.state / "reference" / "lab"
    reference.mkdir(parents=True)
    (reference / "lab.json").write_text(json.dumps({
        "_source_sha256": "x", "test-a": {"a": [rec("a", [1.0])]}, "test-b": {}, "test-c": {}}))
    (reference / "other.json").write_text(json.dumps({"_source_sha256": "y", "test-d": {"d": [rec("d", [1.0])]}}))
    assert store.unprotected("lab") == {"lab": ["test-b", "test-c"]}
    assert store.unprotected("nothing-graded-yet") == {}


def test_the_deadline_is_not_a_setting_of_the_service(tmp_path):
    """The gradebook owns due dates (the formgrader edits them): the service keeps no copy."""
    store = released_store(tmp_path)
    with pytest.raises(StoreError, match="unknown setting"):
        store.update_settings("lab", {"deadline": "2026-12-01T17:00:00+01:00"})
    (store.state / "settings.json").write_text(json.dumps({"lab": {"deadline": "2020-01-01T00:00:00+00:00"}}))
    assert store.assignment_settings("lab") == {"autograde": True, "feedback": "auto"}


def test_test_cells_without_a_record_call_are_reported_from_the_source_before_any_grading(tmp_path):
    store = released_store(tmp_path)
    source = store.course / "source" / "lab"
    source.mkdir(parents=True)
    test = {"grade": True, "solution": False, "points": 1}
    (source / "lab.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": "assert f(1) == 2", "metadata": {"nbgrader": {**test, "grade_id": "t-assert"}}},
        {"cell_type": "code", "source": ["x = 1\n", "nncourse.record('f', f(x))"],  # as on disk: a list of lines
         "metadata": {"nbgrader": {**test, "grade_id": "t-ok"}}},
        {"cell_type": "code", "source": ["x = 1\n", "assert f(x)"], "metadata": {"nbgrader": {**test, "grade_id": "t-lines"}}},
        {"cell_type": "code", "source": "%time record('f', f(2))", "metadata": {"nbgrader": {**test, "grade_id": "t-magic"}}},
        {"cell_type": "code", "source": "f = lambda x: 2", "metadata": {"nbgrader": {"solution": True, "grade_id": "a"}}},
    ]}))
    assert store.unprotected("lab") == {"lab": ["t-assert", "t-lines", "t-magic"]}
