"""What the grading service reads from and writes to the course's nbgrader gradebook.

The gradebook owns scores and due dates (the formgrader writes both too): the
service keeps no copy of either. Runs in the grading service (nbgrader installed).
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from .store import Store, StoreError, parse_deadline


T = TypeVar("T")


# How long a write waits for another writer (a grading worker, the formgrader) to
# finish before SQLite gives up with "database is locked". Writes take milliseconds;
# at a deadline burst many queue up at once.
BUSY_TIMEOUT_SECONDS = 60


def gradebook_url(course: Path) -> str:
    """The one address of a course's gradebook, for every process that opens it: the
    service, its workers, nbgrader's converters inside them, and the formgrader."""
    return f"sqlite:///{course / 'gradebook.db'}?timeout={BUSY_TIMEOUT_SECONDS}"


def open_gradebook(store: Store):
    from nbgrader.api import Gradebook

    return Gradebook(gradebook_url(store.course), store.course_id)


def patiently(read: Callable[[], T], attempts: int = 10, pause: float = 0.5) -> T:
    """Run a read of the gradebook again while a grading worker or the formgrader holds its
    write lock (SQLite answers "database is locked"), or when a row it had begun to read went
    away in between (a resubmission replaced it), for up to attempts * pause seconds."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm.exc import ObjectDeletedError

    for attempt in range(attempts):
        try:
            return read()
        except (OperationalError, ObjectDeletedError):
            if attempt == attempts - 1:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def deadline(store: Store, assignment: str) -> str | None:
    """The assignment's due date, as ISO 8601 in UTC (None when it has none or is not created yet)."""
    from nbgrader.api import MissingEntry

    def read():
        with open_gradebook(store) as gb:
            try:
                return gb.find_assignment(assignment).duedate
            except MissingEntry:
                return None
    due = patiently(read)
    return due.replace(tzinfo=dt.timezone.utc).isoformat() if due else None


def set_deadline(store: Store, assignment: str, value: Any) -> str | None:
    """Set the due date (a date-time with its time zone, or None); returns it as given, normalised."""
    from nbgrader.api import MissingEntry

    parsed = parse_deadline(value)
    with open_gradebook(store) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise StoreError(f"assignment {assignment!r} is not in the gradebook yet; create it in the "
                             "formgrader (Generate) before giving it a deadline") from None
        due = dt.datetime.fromisoformat(parsed).astimezone(dt.timezone.utc).replace(tzinfo=None) if parsed else None
        gb.update_or_create_assignment(assignment, duedate=due)
    return parsed


def scores(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """{(assignment, student): score, max_score, seconds_late, needs_manual_grade, timestamp} of
    each graded submission, hand grading included.

    One SELECT: SQLite gives a statement one snapshot, while nbgrader's objects would load each
    submission's student and score lazily, in later statements, and a worker replacing that
    submission in between (a resubmission) made the read fail."""
    from nbgrader.api import Assignment, Student, SubmittedAssignment

    def read():
        found = {}
        with open_gradebook(store) as gb:
            rows = (gb.db.query(Assignment.name, Student.id, SubmittedAssignment.score,
                                SubmittedAssignment.max_score, SubmittedAssignment.needs_manual_grade,
                                SubmittedAssignment.timestamp, Assignment.duedate, SubmittedAssignment.extension)
                    .join(SubmittedAssignment.assignment).join(SubmittedAssignment.student))
            for name, student, score, max_score, needs_manual_grade, timestamp, due, extension in rows:
                if due is not None and extension is not None:
                    due = due + extension
                late = max(0.0, (timestamp - due).total_seconds()) if timestamp and due else 0
                found[(name, student)] = {"score": score, "max_score": max_score, "seconds_late": late,
                                          "needs_manual_grade": bool(needs_manual_grade), "timestamp": timestamp}
        return found
    return patiently(read)
