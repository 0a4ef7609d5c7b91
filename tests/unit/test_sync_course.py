"""Do course notebooks reach a student's home without overwriting what they changed?"""
from pathlib import Path

import sync_course


def make(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_first_start_copies_everything(tmp_path):
    make(tmp_path / "src", {"01/a.ipynb": "A1", "b.txt": "B1"})
    report = sync_course.sync(tmp_path / "src", tmp_path / "home")
    assert sorted(report["copied"]) == ["01/a.ipynb", "b.txt"]
    assert (tmp_path / "home/01/a.ipynb").read_text() == "A1"


def test_an_unchanged_file_is_updated_and_a_changed_one_is_kept(tmp_path):
    src, home = tmp_path / "src", tmp_path / "home"
    make(src, {"a.ipynb": "A1", "b.ipynb": "B1"})
    sync_course.sync(src, home)
    (home / "b.ipynb").write_text("my work")
    make(src, {"a.ipynb": "A2", "b.ipynb": "B2"})
    report = sync_course.sync(src, home)
    assert report["updated"] == ["a.ipynb"] and report["kept"] == ["b.ipynb"]
    assert (home / "a.ipynb").read_text() == "A2"
    assert (home / "b.ipynb").read_text() == "my work"
    # and the student's version stays theirs on every later start
    make(src, {"b.ipynb": "B3"})
    sync_course.sync(src, home)
    assert (home / "b.ipynb").read_text() == "my work"


def test_a_file_the_student_made_with_a_course_name_is_never_overwritten(tmp_path):
    src, home = tmp_path / "src", tmp_path / "home"
    make(src, {"a.ipynb": "A1"})
    make(home, {"a.ipynb": "student's own"})
    assert sync_course.sync(src, home)["kept"] == ["a.ipynb"]
    assert (home / "a.ipynb").read_text() == "student's own"


def test_a_deleted_course_file_comes_back(tmp_path):
    src, home = tmp_path / "src", tmp_path / "home"
    make(src, {"a.ipynb": "A1"})
    sync_course.sync(src, home)
    (home / "a.ipynb").unlink()
    assert sync_course.sync(src, home)["copied"] == ["a.ipynb"]


def test_a_corrupt_manifest_never_overwrites_student_files(tmp_path):
    src, home = tmp_path / "src", tmp_path / "home"
    make(src, {"a.ipynb": "A1"})
    sync_course.sync(src, home)
    (home / "a.ipynb").write_text("mine")
    (home / sync_course.MANIFEST).write_text("{not json")
    make(src, {"a.ipynb": "A2"})
    sync_course.sync(src, home)
    assert (home / "a.ipynb").read_text() == "mine"
