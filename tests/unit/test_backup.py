"""Backups: live SQLite copied consistently, owners and modes kept, damaged backups refused."""
import json
import os
import sqlite3
import tarfile
import threading

import pytest

from classroom_hub.backup import (BackupError, archive_folder, complete_backups, create, extract_folder,
                                  read_manifest, restore, sha256)


def test_a_database_written_during_the_backup_is_copied_whole(tmp_path):
    """A gradebook busy with writes comes out as a readable database with whole rows only."""
    folder = tmp_path / "course"
    folder.mkdir()
    db = folder / "gradebook.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table grade (student text, score real)")
    stop = threading.Event()

    def write():
        connection = sqlite3.connect(db, timeout=30)
        while not stop.is_set():
            with connection:
                connection.executemany("insert into grade values (?, ?)", [("s", 1.0)] * 50)
        connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        counts = archive_folder(folder, tmp_path / "course.tar.gz")
    finally:
        stop.set()
        writer.join()
    assert counts["databases"] == 1
    out = tmp_path / "restored"
    out.mkdir()
    extract_folder(tmp_path / "course.tar.gz", out)
    with sqlite3.connect(out / "gradebook.db") as copy:
        assert copy.execute("pragma integrity_check").fetchone() == ("ok",)
        rows = copy.execute("select count(*) from grade").fetchone()[0]
    assert rows % 50 == 0  # each transaction is in the copy whole, or not at all


def test_files_owners_modes_and_links_come_back(tmp_path):
    folder = tmp_path / "home"
    (folder / "work").mkdir(parents=True)
    os.chown(folder, 1000, 1000)
    os.chmod(folder, 0o750)
    (folder / "work/notes.txt").write_text("chapter 1")
    os.chmod(folder / "work/notes.txt", 0o640)
    os.chown(folder / "work/notes.txt", 1000, 1000)
    (folder / "link").symlink_to("work/notes.txt")
    (folder / "fake.db").write_bytes(b"SQLite format 3\x00 but not really a database")
    secret = tmp_path / "root-only.txt"  # outside the home: a student's link to it stays a link
    secret.write_text("not the student's")
    (folder / "peek").symlink_to(secret)
    (folder / "peek.db").symlink_to(secret)
    archive_folder(folder, tmp_path / "home.tar.gz")
    with tarfile.open(tmp_path / "home.tar.gz") as tar:
        for name in ("peek", "peek.db"):
            member = tar.getmember(name)
            assert member.issym() and member.size == 0 and member.linkname == str(secret)
        assert b"not the student's" not in b"".join(
            tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    out = tmp_path / "out"
    out.mkdir()  # as a new volume's folder: root's, 0755
    extract_folder(tmp_path / "home.tar.gz", out)
    assert (out.stat().st_uid, out.stat().st_mode & 0o777) == (1000, 0o750)  # the student's again
    restored = out / "work/notes.txt"
    assert restored.read_text() == "chapter 1"
    assert (restored.stat().st_mode & 0o777, restored.stat().st_uid) == (0o640, 1000)
    assert os.readlink(out / "link") == "work/notes.txt"
    assert (out / "fake.db").read_bytes().startswith(b"SQLite format 3")  # kept as is, no failure


def test_an_archive_that_writes_outside_its_folder_is_refused(tmp_path):
    """A home archive is student content: a member escaping the volume's folder is refused."""
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, __import__("io").BytesIO(b"x"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BackupError, match="refusing '../outside.txt'"):
        extract_folder(evil, out)
    assert not (tmp_path / "outside.txt").exists()
    through_link = tmp_path / "link.tar.gz"  # a symlink out, then a file written through it
    with tarfile.open(through_link, "w:gz") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(link)
        info = tarfile.TarInfo("escape/outside.txt")
        info.size = 1
        tar.addfile(info, __import__("io").BytesIO(b"x"))
    with pytest.raises(BackupError, match="refusing 'escape/outside.txt'"):
        extract_folder(through_link, out)
    assert not (tmp_path / "outside.txt").exists()


def _backup(tmp_path, name="classroom"):
    source = tmp_path / f"{name}-20261130T020000Z"
    source.mkdir()
    (source / "state.tar.gz").write_bytes(b"state")
    (source / "volume-classroom-course.tar.gz").write_bytes(b"course")
    archives = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in source.glob("*.tar.gz")}
    (source / "manifest.json").write_text(json.dumps(
        {"format": 1, "classroom": name, "created": "20261130T020000Z",
         "volumes": ["classroom-course"], "archives": archives}))
    return source


def test_a_damaged_or_foreign_backup_is_refused_before_anything_is_touched(tmp_path):
    source = _backup(tmp_path)
    assert read_manifest(source, "classroom")["volumes"] == ["classroom-course"]
    with pytest.raises(BackupError, match="not of 'other'"):
        read_manifest(source, "other")
    (source / "volume-classroom-course.tar.gz").write_bytes(b"courze")
    with pytest.raises(BackupError, match="damaged"):
        read_manifest(source, "classroom")
    (source / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="not a classroom backup manifest"):
        read_manifest(source, "classroom")
    with pytest.raises(BackupError, match="BACKUP=<the folder of one backup>"):
        read_manifest(tmp_path, "classroom")


def _node_part(tmp_path, with_state: bool):
    """A swarm node's part: its volumes, with the state only on the first manager."""
    source = tmp_path / "classroom-20261130T020000Z"
    source.mkdir()
    (source / "volume-classroom-home-alice.tar.gz").write_bytes(b"alice")
    if with_state:
        (source / "state.tar.gz").write_bytes(b"state")
    archives = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in source.glob("*.tar.gz")}
    (source / "manifest.json").write_text(json.dumps(
        {"format": 1, "classroom": "classroom", "created": "20261130T020000Z", "state": with_state,
         "volumes": ["classroom-home-alice"], "archives": archives}))
    return source


def test_a_swarm_nodes_part_without_the_state_is_a_whole_backup_of_that_node(tmp_path):
    source = _node_part(tmp_path, with_state=False)
    assert read_manifest(source, "classroom")["volumes"] == ["classroom-home-alice"]
    # A part that says it has no state but holds one (or the reverse) does not match.
    (source / "state.tar.gz").write_bytes(b"state")
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["archives"]["state.tar.gz"] = {"bytes": 5, "sha256": sha256(source / "state.tar.gz")}
    (source / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="expected"):
        read_manifest(source, "classroom")


@pytest.mark.parametrize("with_state, state", [(False, "state"), (True, None)])
def test_a_part_is_restored_only_where_it_belongs(tmp_path, with_state, state):
    """The first manager's part (with the state) on a worker, or a worker's on the manager,
    is refused before any volume or the state is touched (no engine is reached: None)."""
    source = _node_part(tmp_path, with_state)
    with pytest.raises(BackupError, match="restore each node's part on that node"):
        restore(None, "classroom", tmp_path / state if state else None, source, str(tmp_path), "image")


def test_a_malformed_stamp_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(BackupError, match="--stamp 'tomorrow' is not a UTC stamp"):
        create(None, "classroom", None, tmp_path, str(tmp_path), "image", 7, stamp="tomorrow")
    assert list(tmp_path.iterdir()) == []


def test_only_complete_backups_of_this_classroom_count_for_retention(tmp_path):
    for stamp in ("20261128T020000Z", "20261129T020000Z", "20261130T020000Z"):
        (tmp_path / f"classroom-{stamp}").mkdir()
        (tmp_path / f"classroom-{stamp}/manifest.json").write_text("{}")
    (tmp_path / "classroom-20261201T020000Z.partial").mkdir()
    (tmp_path / "classroom-test-20261130T020000Z").mkdir()
    (tmp_path / "classroom-test-20261130T020000Z/manifest.json").write_text("{}")
    assert [p.name for p in complete_backups(tmp_path, "classroom")] == [
        "classroom-20261128T020000Z", "classroom-20261129T020000Z", "classroom-20261130T020000Z"]
