"""Personalised labs: identities and configurations."""
import json

import pytest

from nncourse import personal
from nncourse.personal import Depends, Identity, lab_config, write_artifact

ALICE = {"student": "alice", "key": "1" * 64}
BOB = {"student": "bob", "key": "2" * 64}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(personal.IDENTITY_ENV, raising=False)
    return tmp_path


def test_the_hubs_identity_is_read_from_the_environment(home, monkeypatch):
    monkeypatch.setenv(personal.IDENTITY_ENV, json.dumps(ALICE))
    who = personal.identity()
    assert (who.student, who.key, who.source, who.graded) == ("alice", "1" * 64, "hub", True)
    assert "1" * 64 not in repr(who)


def test_the_graders_identity_file_wins_over_the_environment(home, monkeypatch):
    monkeypatch.setenv(personal.IDENTITY_ENV, json.dumps(BOB))
    (home / ".nncourse").mkdir()
    (home / ".nncourse" / "identity.json").write_text(json.dumps(ALICE))
    assert personal.identity().student == "alice" and personal.identity().source == "grader"


@pytest.mark.parametrize("bad", ["not json", json.dumps({"student": "a"}), json.dumps({"student": "a b", "key": "1" * 64}),
                                 json.dumps({"student": "a", "key": "xyz"}), json.dumps([1])])
def test_a_malformed_identity_names_the_variable_and_the_fix(home, monkeypatch, bad):
    monkeypatch.setenv(personal.IDENTITY_ENV, bad)
    with pytest.raises(ValueError, match=r"NNCOURSE_IDENTITY.*Restart your server"):
        personal.identity()


def test_without_an_identity_a_practice_one_is_used_with_a_warning(home):
    with pytest.warns(UserWarning, match="practice configuration"):
        who = personal.identity()
    assert who.source == "practice" and not who.graded
    config = lab_config("mlp2", who=who)
    assert not config.graded and "Practice configuration" in config._repr_markdown_()


def test_a_configuration_is_stable_and_personal():
    alice, bob = Identity(**ALICE, source="hub"), Identity(**BOB, source="hub")
    first = lab_config("mlp2", who=alice)
    assert first == lab_config("mlp2", who=alice)
    assert set(first.as_dict()) == set(personal.DEFAULT_SPACE)
    assert first.as_text() != lab_config("mlp2", who=bob).as_text()
    assert first.as_text() != lab_config("cnn2", who=alice).as_text()
    assert first["learning_rate"] in personal.DEFAULT_SPACE["learning_rate"].choices[first["optimizer"]]
    assert json.loads(first.as_text())["student"] == "alice" and len(first.short_hash) == 12
    with pytest.raises(KeyError, match="not part of the mlp2 configuration"):
        first["dropout"]


def test_configurations_cover_the_choices_across_a_class():
    seen = {lab_config("mlp2", who=Identity(f"s{i}", f"{i:064x}", "hub"))["layers"] for i in range(60)}
    assert seen == {1, 2, 3}


def test_a_space_of_the_labs_own():
    space = {"channels": (4, 8), "optimizer": ("sgd", "adam"),
             "learning_rate": Depends("optimizer", {"sgd": (0.1,), "adam": (0.01,)})}
    config = lab_config("cnn2", space, who=Identity(**ALICE, source="hub"))
    assert config["learning_rate"] == {"sgd": 0.1, "adam": 0.01}[config["optimizer"]]
    with pytest.raises(ValueError, match="must come before it"):
        lab_config("cnn2", {"lr": Depends("optimizer", {}), "optimizer": ("sgd",)}, who=Identity(**ALICE, source="hub"))
    with pytest.raises(ValueError, match="short plain name"):
        lab_config("my lab", space, who=Identity(**ALICE, source="hub"))


def test_the_students_artifact(tmp_path):
    config = lab_config("mlp2", who=Identity(**ALICE, source="hub"))
    path = write_artifact(config, {"accuracy": 0.91}, tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "submission_alice.json"
    assert data["configuration"] == config.as_dict() and data["metrics"] == {"accuracy": 0.91}
    assert data["configuration_hash"] == config.short_hash and len(data["short_hash"]) == 12
    with pytest.raises(TypeError, match="metric 'note' must be a number"):
        write_artifact(config, {"note": "good"}, tmp_path)
