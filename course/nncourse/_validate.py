"""Argument checks whose errors tell a student what to pass instead."""

from collections.abc import Collection
from typing import Any


def positive_int(caller: str, name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{caller}: {name} must be a whole number >= {minimum}, got {value!r}. "
            f"Pass an int of at least {minimum}."
        )
    return value


def non_negative(caller: str, name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a number >= 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"{caller}: {name} must be a number >= 0, got {value!r}. "
            f"Use {name}=0 for no noise and larger values for more."
        )
    return float(value)


def one_of(caller: str, name: str, value: Any, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{caller}: {name} must be one of {listed}; got {value!r}.")
    return str(value)
