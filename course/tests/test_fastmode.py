"""Fast mode follows NNCOURSE_FAST_MODE, read at call time."""

import pytest

from nncourse.fastmode import FAST_MODE_ENV, is_fast, pick


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", " yes "])
def test_fast_mode_is_on_for_truthy_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Is fast mode on for 1/true/yes in any case?"""
    monkeypatch.setenv(FAST_MODE_ENV, value)
    assert is_fast()
    assert pick(full=100, fast=3) == 3


@pytest.mark.parametrize("value", ["", "0", "false", "no", "on", "2"])
def test_fast_mode_is_off_for_other_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Is fast mode off for anything but 1/true/yes?"""
    monkeypatch.setenv(FAST_MODE_ENV, value)
    assert not is_fast()
    assert pick(full=100, fast=3) == 100


def test_fast_mode_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does changing the variable in a running process take effect at once?"""
    assert not is_fast()
    monkeypatch.setenv(FAST_MODE_ENV, "1")
    assert is_fast()
    monkeypatch.delenv(FAST_MODE_ENV)
    assert pick("full", "fast") == "full"
