"""Are passwords generated once, stored only as hashes, and kept across redeploys?"""
import json
import stat

import bcrypt

from classroom_hub.roster import build_roster, read_initial_passwords, sync


def test_each_person_without_a_hash_gets_a_password_that_verifies_against_the_stored_hash():
    roster, passwords, created = build_roster([{"username": "ada", "role": "student"}], {}, {})
    assert set(roster) == {"admin", "ada"}
    assert sorted(created) == ["ada", "admin"]
    for name in ("admin", "ada"):
        assert passwords[name] not in json.dumps(roster)
        assert bcrypt.checkpw(passwords[name].encode(), roster[name]["hash"].encode())
    assert roster["admin"]["role"] == "admin"


def test_an_operator_hash_is_used_as_given_and_no_password_is_generated():
    given = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    roster, passwords, created = build_roster([{"username": "ada", "role": "instructor", "password_hash": given}], {}, {})
    assert roster["ada"] == {"hash": given, "role": "instructor", "source": "operator"}
    assert "ada" not in passwords and "ada" not in created


def test_sync_twice_changes_nothing_the_second_time_and_keeps_files_private(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"username": "ada", "role": "student"}]))
    first = sync(spec, tmp_path)
    before = (tmp_path / "roster.json").read_text()
    second = sync(spec, tmp_path)
    assert first["changed"] and not second["changed"]
    assert (tmp_path / "roster.json").read_text() == before
    for name in ("roster.json", "initial-passwords"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_removing_a_person_removes_their_login_and_adding_one_keeps_the_others_passwords(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"username": "ada"}, {"username": "bo"}]))
    sync(spec, tmp_path)
    ada_password = read_initial_passwords(tmp_path / "initial-passwords")["ada"]
    spec.write_text(json.dumps([{"username": "ada"}, {"username": "cy"}]))
    result = sync(spec, tmp_path)
    users = json.loads((tmp_path / "roster.json").read_text())["users"]
    assert set(users) == {"admin", "ada", "cy"}
    assert result["new_passwords"] == ["cy"]
    assert read_initial_passwords(tmp_path / "initial-passwords")["ada"] == ada_password


def synced_ada_and_bo(tmp_path):
    """A roster of ada and bo synced once: the spec, the stored hashes, the passwords file."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"username": "ada"}, {"username": "bo"}]))
    sync(spec, tmp_path)
    return spec, json.loads((tmp_path / "roster.json").read_text())["users"], tmp_path / "initial-passwords"


def test_deleting_a_line_or_the_whole_file_changes_no_password(tmp_path):
    """The file's header invites deleting lines: a redeploy afterwards keeps every hash."""
    spec, hashes, passwords_file = synced_ada_and_bo(tmp_path)
    kept = [line for line in passwords_file.read_text().splitlines() if not line.startswith("ada ")]
    passwords_file.write_text("\n".join(kept) + "\n")
    result = sync(spec, tmp_path)
    assert result == {"changed": False, "new_passwords": [], "dropped_lines": []}
    assert json.loads((tmp_path / "roster.json").read_text())["users"] == hashes
    assert "ada" not in read_initial_passwords(passwords_file)  # not re-added: nobody knows it
    passwords_file.unlink()
    assert sync(spec, tmp_path)["new_passwords"] == []
    assert json.loads((tmp_path / "roster.json").read_text())["users"] == hashes


def test_an_edited_line_changes_no_password_and_is_dropped_with_a_warning(tmp_path):
    """Typing a new password into the file does not set it; the false line goes."""
    spec, hashes, passwords_file = synced_ada_and_bo(tmp_path)
    bo_password = read_initial_passwords(passwords_file)["bo"]
    text = passwords_file.read_text()
    ada_line = next(line for line in text.splitlines() if line.startswith("ada "))
    passwords_file.write_text(text.replace(ada_line, "ada letmein") + "mallory hunter2\n")
    result = sync(spec, tmp_path)
    assert result["dropped_lines"] == ["ada"] and result["new_passwords"] == []
    assert json.loads((tmp_path / "roster.json").read_text())["users"] == hashes
    assert read_initial_passwords(passwords_file) == {
        "admin": read_initial_passwords(passwords_file)["admin"], "bo": bo_password}
    assert not bcrypt.checkpw(b"letmein", hashes["ada"]["hash"].encode())
    assert sync(spec, tmp_path) == {"changed": False, "new_passwords": [], "dropped_lines": []}
