"""The grading service's pure parts: record comparison and the course volume's safety checks."""
import io
import json
import tarfile

import pytest

from classroom_grading import RECORD_MIME, records
from classroom_grading.store import Store, StoreError, parse_deadline, to_nbgrader_timestamp, untar


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
    with pytest.raises(StoreError, match="more than"):
        untar(tar([("a.ipynb", "file"), ("b.ipynb", "file")]), tmp_path, max_files=1)


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
