"""Where the solution's records are kept, and when they are current.

The grading service runs the instructor's solution in the sandbox and keeps each test
cell's records: GRADING/reference/ASSIGNMENT/NOTEBOOK.json. A personalised notebook
(source metadata "nncourse": {"personalised": LAB}) depends on who runs it, so its
solution runs once per student, with that student's identity, into
GRADING/reference/ASSIGNMENT/NOTEBOOK/STUDENT.json, and NOTEBOOK.json only marks it
personalised. A reference is current while the source and the identity it ran with
are unchanged (their hashes are stored in it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def personalised(notebook: Any) -> str:
    """The lab name of a personalised source notebook, or ""."""
    marker = ((notebook.get("metadata") or {}).get("nncourse") or {}).get("personalised")
    return str(marker) if marker else ""


def reference_file(folder: Path, assignment: str, notebook: str, student: str) -> Path:
    """The solution's records for this student's notebook (see the module's docstring)."""
    shared = folder / assignment / f"{notebook}.json"
    try:
        marked = json.loads(shared.read_text()).get("_personalised")
    except (OSError, ValueError, AttributeError):
        marked = False
    return folder / assignment / notebook / f"{student}.json" if marked else shared


def is_current(path: Path, source_sha256: str, identity_sha256: str | None = None) -> bool:
    """Whether the records at `path` came from this source (and this identity)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("_source_sha256") == source_sha256 \
        and (identity_sha256 is None or found.get("_identity") == identity_sha256)
