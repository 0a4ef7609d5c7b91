"""Personalised labs: each student's configuration, derived from their hub identity.

A personalised lab gives every student their own architecture and hyperparameters
(hidden units, layers, activation, optimizer, learning rate, batch size, epochs,
seed), so that copied work fails. The configuration is derived from the student's
*identity*: their hub user name and a key that the hub computes from a per-course
secret (``classroom_grading.identity``). A student knows their own key, never the
secret, so nobody can compute another student's configuration, and the instructor
changes every configuration by changing the term or the secret.

Where the identity comes from:

- in the student's server, the hub puts it in the ``NNCOURSE_IDENTITY`` environment
  variable (JSON ``{"student": ..., "key": ...}``);
- in the grading sandbox, the grading service hands the submitting student's
  identity to the harness, which writes ``~/.nncourse/identity.json``; the file wins
  over the variable there, so the graded run always uses the grader's identity;
- anywhere else (a laptop, the course proof without a service), a practice identity
  from the user name, with a warning: the configuration is not a graded one.

A lab's "Student identifier" cell calls ``lab_config(LAB, SPACE)`` and shows it; a
test cell records ``config.as_text()``. The grader runs the instructor's solution
with the same identity and compares records, so a student who edits the cell, or
pastes another student's values, records the wrong configuration and the wrong
numbers, and scores nothing for them.
"""
from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import hmac
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["Identity", "Depends", "LabConfig", "identity", "lab_config", "write_artifact",
           "DEFAULT_SPACE", "IDENTITY_ENV"]

IDENTITY_ENV = "NNCOURSE_IDENTITY"
_KEY = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,100}$")


@dataclass(frozen=True)
class Identity:
    """Who runs the notebook: the hub user name and their personal key (64 hex digits)."""

    student: str
    key: str = field(repr=False)
    source: str  # "grader", "hub" or "practice"

    @property
    def graded(self) -> bool:
        """Whether this identity comes from the hub or the grader (not a practice one)."""
        return self.source != "practice"


def identity_file() -> Path:
    """Where the grading harness writes the submitting student's identity."""
    return Path(os.path.expanduser("~")) / ".nncourse" / "identity.json"


def _parse(text: str, where: str, source: str) -> Identity:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"{where} is not JSON; it should be {{\"student\": NAME, \"key\": 64 hex digits}}. "
                         "Restart your server from the hub's home page to get it again.") from None
    student, key = (data.get("student"), data.get("key")) if isinstance(data, dict) else (None, None)
    if not isinstance(student, str) or not _NAME.match(student) or not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"{where} must hold {{\"student\": NAME, \"key\": 64 hex digits}}. "
                         "Restart your server from the hub's home page to get it again.")
    return Identity(student, key, source)


def identity() -> Identity:
    """This notebook's identity: the grader's, else the hub's, else a practice one (with a warning)."""
    path = identity_file()
    if path.is_file():
        return _parse(path.read_text(), str(path), "grader")
    if os.environ.get(IDENTITY_ENV):
        return _parse(os.environ[IDENTITY_ENV], f"${IDENTITY_ENV}", "hub")
    user = getpass.getuser()
    warnings.warn(f"no hub identity here (${IDENTITY_ENV} is not set): using a practice configuration for "
                  f"{user!r}. Your graded configuration is the one your server on the hub shows.", stacklevel=2)
    return Identity(user, hashlib.sha256(f"nncourse-practice\0{user}".encode()).hexdigest(), "practice")


@dataclass(frozen=True)
class Depends:
    """Choices that depend on an earlier choice: ``Depends("optimizer", {"sgd": (0.1, 0.2), ...})``."""

    on: str
    choices: Mapping[Any, Sequence[Any]]


# What the outline personalises, with choices that all train the course's small problems.
DEFAULT_SPACE: dict[str, Sequence[Any] | Depends] = {
    "hidden_units": (16, 24, 32, 48, 64),
    "layers": (1, 2, 3),
    "activation": ("relu", "tanh", "leaky_relu", "sigmoid"),
    "optimizer": ("sgd", "momentum", "adam"),
    "learning_rate": Depends("optimizer", {"sgd": (0.05, 0.1, 0.2), "momentum": (0.02, 0.05, 0.1),
                                           "adam": (0.003, 0.005, 0.01)}),
    "batch_size": (16, 32, 64),
    "epochs": (20, 30, 40),
    "seed": range(1, 10_000),
}


@dataclass(frozen=True)
class LabConfig:
    """One student's configuration of one lab: read it like a dict (``config["layers"]``)."""

    lab: str
    student: str
    values: Mapping[str, Any]
    graded: bool

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(f"{name!r} is not part of the {self.lab} configuration; it has "
                           f"{', '.join(self.values)}") from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def as_text(self) -> str:
        """The configuration as canonical JSON: what a test cell records."""
        return json.dumps({"lab": self.lab, "student": self.student, **self.values}, sort_keys=True)

    @property
    def short_hash(self) -> str:
        """12 hex digits that name this student's configuration of this lab."""
        return hashlib.sha256(self.as_text().encode()).hexdigest()[:12]

    def _repr_markdown_(self) -> str:
        rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in self.values.items())
        note = "" if self.graded else "\n\n**Practice configuration**: not the one you are graded on."
        return (f"**{self.lab}** configuration of **{self.student}** (`{self.short_hash}`)\n\n"
                f"| setting | value |\n|---|---|\n{rows}{note}")

    def __str__(self) -> str:
        return "\n".join([f"{self.lab} configuration of {self.student} ({self.short_hash})"]
                         + [f"  {k:14} {v}" for k, v in self.values.items()])


def _pick(key: str, lab: str, name: str, choices: Sequence[Any]) -> Any:
    options = list(choices)
    if not options:
        raise ValueError(f"lab_config({lab!r}): {name!r} has no choices")
    digest = hmac.new(bytes.fromhex(key), f"{lab}\0{name}".encode(), hashlib.sha256).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def lab_config(lab: str, space: Mapping[str, Sequence[Any] | Depends] | None = None,
               who: Identity | None = None) -> LabConfig:
    """The configuration of ``lab`` for this notebook's student (or ``who``).

    ``space`` maps each setting to its choices (default ``DEFAULT_SPACE``); a
    ``Depends`` picks among choices keyed by an earlier setting's value. Each
    setting is drawn from an HMAC of the student's key, the lab and the setting's
    name, so it is the same on every run and in the grader, and changes with the lab.
    """
    if not isinstance(lab, str) or not _NAME.match(lab):
        raise ValueError(f"lab_config(lab): {lab!r} must be a short plain name such as 'mlp2'")
    who = who or identity()
    values: dict[str, Any] = {}
    for name, choices in (space or DEFAULT_SPACE).items():
        if isinstance(choices, Depends):
            if choices.on not in values:
                raise ValueError(f"lab_config({lab!r}): {name!r} depends on {choices.on!r}, which must come "
                                 "before it in the space")
            try:
                choices = choices.choices[values[choices.on]]
            except KeyError:
                raise ValueError(f"lab_config({lab!r}): {name!r} has no choices for "
                                 f"{choices.on}={values[choices.on]!r}") from None
        values[name] = _pick(who.key, lab, name, choices)
    return LabConfig(lab, who.student, values, who.graded)


def write_artifact(config: LabConfig, metrics: Mapping[str, float], folder: str | os.PathLike = ".") -> Path:
    """Write ``submission_<student>.json``: the student, a short hash, the configuration,
    key metrics and a timestamp, for the student's own record and the instructor's audit.

    It is the student's copy and proves nothing by itself: the grading service writes and
    signs its own artifact from what it graded."""
    clean = {}
    for name, value in metrics.items():
        try:
            clean[str(name)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"write_artifact: metric {name!r} must be a number, not {type(value).__name__}") from None
    body = {"student": config.student, "lab": config.lab, "configuration": config.as_dict(),
            "configuration_hash": config.short_hash, "metrics": clean,
            "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    body["short_hash"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(folder) / f"submission_{re.sub(r'[^A-Za-z0-9_.-]', '_', config.student)}.json"
    path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return path
