"""Fast mode: one switch that shrinks data and training steps.

The autograder and CI set ``NNCOURSE_FAST_MODE=1`` so that every notebook runs
in seconds. Notebooks choose their sizes with :func:`pick`::

    epochs = pick(full=20, fast=2)
    n_train = pick(full=60_000, fast=2_000)
"""

import os
from typing import TypeVar

__all__ = [
    "FAST_MODE_ENV",
    "is_fast",
    "pick",
]

FAST_MODE_ENV = "NNCOURSE_FAST_MODE"
"""Name of the environment variable that turns fast mode on."""

_TRUE_VALUES = frozenset({"1", "true", "yes"})

T = TypeVar("T")


def is_fast() -> bool:
    """Return True when ``NNCOURSE_FAST_MODE`` is "1", "true" or "yes" (any case).

    The variable is read on every call, so setting it in a running notebook
    (``os.environ["NNCOURSE_FAST_MODE"] = "1"``) takes effect at once.
    """
    return os.environ.get(FAST_MODE_ENV, "").strip().lower() in _TRUE_VALUES


def pick(full: T, fast: T) -> T:
    """Return ``fast`` in fast mode and ``full`` otherwise.

    Example: ``epochs = pick(full=20, fast=2)``.
    """
    return fast if is_fast() else full
