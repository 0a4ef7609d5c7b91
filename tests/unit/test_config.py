"""Does the operator file fail before anything changes, naming the key and what was expected?"""
from pathlib import Path

import pytest

from classroom_driver import ConfigError, load_config, merge


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "classroom.yml"
    path.write_text(text)
    return path


def test_defaults_alone_are_a_valid_config():
    config = load_config(None)
    assert config["name"] == "classroom"
    assert config["hub"]["port"] == 8000
    assert config["roster"] == []


def test_an_operator_value_overrides_only_its_own_key(tmp_path):
    config = load_config(write(tmp_path, "hub:\n  port: 9000\nroster:\n  - username: ada\n"))
    assert config["hub"]["port"] == 9000
    assert config["hub"]["bind_address"] == "0.0.0.0"
    assert config["roster"] == [{"username": "ada", "role": "student"}]


def test_an_unknown_key_is_named_with_its_path_and_the_allowed_keys(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "limits:\n  student:\n    memroy: 2G\n"))
    message = str(error.value)
    assert "limits.student: unknown key(s) memroy" in message
    assert "expected one of: cpus, memory" in message


def test_a_wrong_value_names_its_path_and_what_was_expected(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "hub:\n  port: 80000\nroster:\n  - username: Bad Name\n"))
    message = str(error.value)
    assert "hub.port: got 80000" in message
    assert "roster[0].username: got \"Bad Name\", expected lowercase letters" in message
    assert "2 problem(s)" in message


def test_a_duplicate_roster_entry_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"roster\[1\].username: 'ada' is listed twice"):
        load_config(write(tmp_path, "roster:\n  - username: ada\n  - username: ada\n"))


def test_the_operator_account_name_is_reserved(tmp_path):
    with pytest.raises(ConfigError, match=r"roster\[0\].username"):
        load_config(write(tmp_path, "roster:\n  - username: admin\n"))


def test_a_password_hash_must_be_bcrypt(tmp_path):
    with pytest.raises(ConfigError, match=r"roster\[0\].password_hash: .*bcrypt"):
        load_config(write(tmp_path, "roster:\n  - username: ada\n    password_hash: secret\n"))


def test_tls_without_files_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tls: enabled is true but cert_file or key_file is empty"):
        load_config(write(tmp_path, "tls:\n  enabled: true\n"))


def test_broken_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line 3, column 9"):
        load_config(write(tmp_path, "hub:\n  port: 1\n  bind: : x\n"))


def test_a_missing_file_says_how_to_pass_one(tmp_path):
    with pytest.raises(ConfigError, match="CONFIG="):
        load_config(tmp_path / "nope.yml")


def test_merge_replaces_lists_and_merges_mappings():
    assert merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2]}) == {"a": {"b": 1, "c": 3}, "l": [2]}


def test_a_prestart_schedule_entry_must_be_days_and_a_time(tmp_path):
    assert load_config(write(tmp_path, "prestart:\n  schedule: ['mon,wed 09:50', 'daily 13:05']\n"))["prestart"]["schedule"]
    with pytest.raises(ConfigError, match=r"prestart.schedule\[0\]: got \"monday 9am\", expected DAYS HH:MM"):
        load_config(write(tmp_path, "prestart:\n  schedule: ['monday 9am']\n"))
