"""The course volume's layout, and the file operations on it that must be safe.

    ROOT/<course_id>/        nbgrader's course folder: source, release, submitted,
                             autograded, feedback, gradebook.db, nbgrader_config.py
    ROOT/exchange/outbound/<assignment>/               released files
    ROOT/exchange/inbound/<student>/<assignment>/<ts>/ submissions, as received
    ROOT/exchange/feedback/<student>/<assignment>/<ts>/<notebook>.html
    ROOT/grading/settings.json                         per-assignment settings
    ROOT/grading/jobs/<student>/<assignment>/<ts>.json grading state of each submission
    ROOT/grading/reference/<assignment>/<notebook>.json the solution's records

Only the grading service and the formgrader mount this volume; no student
container does. Students reach it through the service's API, as themselves.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import zlib
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TIMESTAMP_DIR = "%Y%m%dT%H%M%S.%fZ"
NBGRADER_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f %Z"
# A file or folder name inside an upload: no markup, no control characters, no
# leading dash or dot-dot; what nbgrader, a shell and an HTML page all take as is.
PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._+()-]{0,99}$")
# Files a browser would run as a page if staff opened them from the formgrader
# (which serves a submission's files on its own origin): never accepted.
ACTIVE_SUFFIXES = (".html", ".htm", ".xhtml", ".shtml", ".svg", ".svgz", ".xml", ".xsl", ".xslt", ".js", ".mjs")
# Per-assignment settings the service owns. The deadline is not among them: the
# gradebook owns it (see `gradebook.set_deadline`), as the formgrader expects.
DEFAULT_SETTINGS = {"autograde": True, "feedback": "auto"}


class StoreError(ValueError):
    """Bad input from a client: the message names the input and the fix."""

    status = 400


class TooLarge(StoreError):
    """An upload over a size limit (HTTP 413)."""

    status = 413


class TooMany(StoreError):
    """Submissions faster than the rate limit (HTTP 429)."""

    status = 429


@dataclass(frozen=True)
class UploadLimits:
    """What one student may upload: each limit is checked while the tar is read, before
    anything is written, so a small archive that unpacks to a flood is refused cheaply."""

    max_upload: int = 20 * 2**20       # bytes received (compressed)
    max_unpacked: int = 20 * 2**20     # bytes of all files, unpacked
    max_entries: int = 500             # files and folders
    max_depth: int = 6                 # folders deep
    quota: int = 100 * 2**20           # bytes a student's kept submissions may hold, all assignments
    per_minute: int = 6                # submissions per student per minute
    keep: int = 3                      # submissions kept per student and assignment; older ones are pruned


LIMITS = UploadLimits()


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME.match(value) or value in (".", ".."):
        raise StoreError(f"{kind} {value!r} is not a valid name: use letters, digits, '.', '_' and '-' "
                         "(at most 100, not starting with a dot)")
    return value


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def parse_deadline(value: Any) -> str | None:
    """An ISO 8601 date-time with an explicit offset or zone, e.g. 2026-12-01T17:00:00+01:00."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        text, _, zone = value.partition(" ")
        try:
            moment = dt.datetime.fromisoformat(text)
            if zone:
                moment = moment.replace(tzinfo=ZoneInfo(zone))
        except (ValueError, KeyError) as error:
            raise StoreError(f"deadline {value!r} is not a date-time ({error}); write it like "
                             "2026-12-01T17:00:00+01:00 or 2026-12-01T17:00:00 Europe/Berlin") from None
        if moment.tzinfo is not None:
            return moment.isoformat()
    raise StoreError(f"deadline {value!r} has no time zone; add an offset (2026-12-01T17:00:00+01:00) "
                     "or a zone name (2026-12-01T17:00:00 Europe/Berlin)")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Store:
    def __init__(self, root: Path, course_id: str):
        self.rate = RateLimit()
        self.guard, self.locks = threading.Lock(), {}
        self.root = Path(root)
        self.course_id = check_name("course id", course_id)
        self.course = self.root / course_id
        self.exchange = self.root / "exchange"
        self.state = self.root / "grading"

    def ensure(self) -> None:
        for folder in (self.course / "source", self.exchange / "outbound", self.exchange / "inbound",
                       self.exchange / "feedback", self.state / "jobs", self.state / "reference"):
            folder.mkdir(parents=True, exist_ok=True)

    # --- settings ---------------------------------------------------------------
    def settings(self) -> dict[str, dict[str, Any]]:
        path = self.state / "settings.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def assignment_settings(self, assignment: str) -> dict[str, Any]:
        stored = self.settings().get(assignment, {})
        return {key: stored.get(key, default) for key, default in DEFAULT_SETTINGS.items()}

    def update_settings(self, assignment: str, changes: dict[str, Any]) -> dict[str, Any]:
        check_name("assignment", assignment)
        unknown = set(changes) - set(DEFAULT_SETTINGS)
        if unknown:
            raise StoreError(f"unknown setting(s) {sorted(unknown)}; the settings are {sorted(DEFAULT_SETTINGS)}")
        if "autograde" in changes and not isinstance(changes["autograde"], bool):
            raise StoreError("autograde must be true or false")
        if "feedback" in changes and changes["feedback"] not in ("auto", "manual"):
            raise StoreError("feedback must be 'auto' (released after grading) or 'manual' (from the formgrader)")
        everything = self.settings()
        everything[assignment] = {**self.assignment_settings(assignment), **changes}
        write_json(self.state / "settings.json", everything)
        return everything[assignment]

    # --- released assignments ---------------------------------------------------
    def released(self) -> list[str]:
        outbound = self.exchange / "outbound"
        return sorted(p.name for p in outbound.iterdir() if p.is_dir()) if outbound.is_dir() else []

    def release_notebooks(self, assignment: str) -> list[str]:
        folder = self.exchange / "outbound" / assignment
        return sorted(p.stem for p in folder.glob("*.ipynb"))

    def release_tar(self, assignment: str) -> bytes:
        folder = self.exchange / "outbound" / check_name("assignment", assignment)
        if not folder.is_dir():
            raise FileNotFoundError(f"assignment {assignment!r} is not released")
        return tar_folder(folder)

    # --- submissions ------------------------------------------------------------
    def receive(self, student: str, assignment: str, payload: bytes, limits: UploadLimits = LIMITS) -> str:
        """Store a submission under the server's own timestamp; returns that timestamp.

        Refuses an upload over the limits, a student over their quota, and a student
        submitting faster than the rate limit; keeps the newest `limits.keep`
        submissions of each assignment (their grading records stay in the jobs and
        the gradebook).
        """
        check_name("student", student)
        check_name("assignment", assignment)
        if assignment not in self.released():
            raise StoreError(f"assignment {assignment!r} is not released; fetch a released assignment first")
        self.rate.check(student, limits.per_minute)
        with self.guard:
            lock = self.locks.setdefault(student, threading.Lock())
        with lock:  # one upload of a student at a time: the quota and pruning see a settled folder
            return self._receive(student, assignment, payload, limits)

    def _receive(self, student: str, assignment: str, payload: bytes, limits: UploadLimits) -> str:
        used = self.usage(student)
        if used + len(payload) > limits.quota:
            raise TooLarge(f"{student} already keeps {used} bytes of submissions, and this upload would pass the "
                           f"quota of {limits.quota} bytes; remove large files (data sets, checkpoints) from the "
                           "assignment folder")
        stamp = now().strftime(TIMESTAMP_DIR)
        target = self.exchange / "inbound" / student / assignment / stamp
        partial = target.with_name(f".{stamp}.partial")
        try:
            untar(payload, partial, limits)
            if not any(partial.glob("*.ipynb")):
                raise StoreError(f"the submission of {assignment!r} holds no notebook; submit the assignment folder")
            if used + folder_size(partial) > limits.quota:
                raise TooLarge(f"this submission would take {student} past the quota of {limits.quota} bytes; "
                               "remove large files from the assignment folder")
            (partial / "timestamp.txt").write_text(to_nbgrader_timestamp(stamp))
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self.prune(student, assignment, limits.keep)
        return stamp

    def usage(self, student: str) -> int:
        """Bytes of the submissions kept for this student, all assignments."""
        return folder_size(self.exchange / "inbound" / student)

    def prune(self, student: str, assignment: str, keep: int) -> list[str]:
        """Delete all but the newest `keep` submissions, never one being graded; returns those deleted."""
        removed = []
        for stamp in self.submissions(student, assignment)[:-keep]:
            if (self.job(student, assignment, stamp) or {}).get("status") in ("queued", "running"):
                continue
            shutil.rmtree(self.exchange / "inbound" / student / assignment / stamp, ignore_errors=True)
            if self.job(student, assignment, stamp) is not None:
                self.set_job(student, assignment, stamp, pruned=True)
            removed.append(stamp)
        return removed

    def submissions(self, student: str, assignment: str) -> list[str]:
        folder = self.exchange / "inbound" / student / assignment
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []

    def all_submissions(self) -> list[tuple[str, str, str]]:
        found = []
        inbound = self.exchange / "inbound"
        for student in sorted(inbound.iterdir()) if inbound.is_dir() else []:
            for assignment in sorted(student.iterdir()):
                for stamp in self.submissions(student.name, assignment.name):
                    found.append((student.name, assignment.name, stamp))
        return found

    def collect(self, student: str, assignment: str, stamp: str) -> Path:
        """Copy one submission into nbgrader's submitted/ folder, replacing the older one."""
        source = self.exchange / "inbound" / student / assignment / stamp
        dest = self.course / "submitted" / student / assignment
        staging = dest.with_name(f".{assignment}.collecting")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging, symlinks=False)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, dest)
        return dest

    # --- feedback -----------------------------------------------------------------
    def release_feedback(self, student: str, assignment: str, stamp: str) -> int:
        """Copy the generated feedback of a student's graded submission to where they fetch it."""
        source = self.course / "feedback" / student / assignment
        files = sorted(source.glob("*.html")) if source.is_dir() else []
        dest = self.exchange / "feedback" / student / assignment / stamp
        dest.mkdir(parents=True, exist_ok=True)
        for html in files:
            shutil.copyfile(html, dest / html.name)
        return len(files)

    def feedback(self, student: str, assignment: str) -> dict[str, dict[str, str]]:
        """{timestamp: {notebook: checksum}} of the feedback released to this student."""
        folder = self.exchange / "feedback" / student / assignment
        result: dict[str, dict[str, str]] = {}
        for stamp in sorted(folder.iterdir()) if folder.is_dir() else []:
            result[stamp.name] = {html.stem: hashlib.md5(html.read_bytes()).hexdigest()
                                  for html in sorted(stamp.glob("*.html"))}
        return result

    def feedback_tar(self, student: str, assignment: str) -> bytes:
        folder = self.exchange / "feedback" / check_name("student", student) / check_name("assignment", assignment)
        if not folder.is_dir():
            raise FileNotFoundError(f"no feedback has been released for {assignment!r}")
        return tar_folder(folder)

    # --- jobs -------------------------------------------------------------------------
    def unprotected(self, assignment: str) -> dict[str, list[str]]:
        """{notebook: [grade ids]} of the test cells that record nothing, read from the source
        as soon as it exists and from the solution's run once it has been graded: they are graded
        as nbgrader grades them (no error, full marks), which a student can fake."""
        from .records import unrecorded_test_cells

        found: dict[str, set[str]] = {}
        for path in sorted((self.course / "source" / assignment).glob("*.ipynb")):
            try:
                cells = unrecorded_test_cells(json.loads(path.read_text()))
            except ValueError:
                continue
            found.setdefault(path.stem, set()).update(cells)
        for path in sorted((self.state / "reference" / assignment).glob("*.json")):
            found.setdefault(path.stem, set()).update(
                cell for cell, recs in json.loads(path.read_text()).items() if not cell.startswith("_") and not recs)
        return {notebook: sorted(cells) for notebook, cells in found.items() if cells}

    def artifact_path(self, student: str, assignment: str, stamp: str) -> Path:
        """The signed artifact of a graded submission (see `integrity`)."""
        return self.state / "artifacts" / assignment / student / f"{stamp}.json"

    def job_path(self, student: str, assignment: str, stamp: str) -> Path:
        return self.state / "jobs" / student / assignment / f"{stamp}.json"

    def job(self, student: str, assignment: str, stamp: str) -> dict[str, Any] | None:
        path = self.job_path(student, assignment, stamp)
        return json.loads(path.read_text()) if path.is_file() else None

    def set_job(self, student: str, assignment: str, stamp: str, **fields: Any) -> dict[str, Any]:
        job = self.job(student, assignment, stamp) or {"student": student, "assignment": assignment,
                                                       "timestamp": stamp}
        job.update(fields, updated=now().isoformat())
        write_json(self.job_path(student, assignment, stamp), job)
        return job

    def jobs(self) -> list[dict[str, Any]]:
        folder = self.state / "jobs"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*/*.json"))]


def to_nbgrader_timestamp(stamp: str) -> str:
    moment = dt.datetime.strptime(stamp, TIMESTAMP_DIR).replace(tzinfo=dt.timezone.utc)
    return moment.strftime(NBGRADER_TIMESTAMP)


def tar_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


def folder_size(folder: Path) -> int:
    """Bytes of the plain files under folder (0 when it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) \
        if folder.is_dir() else 0


class RateLimit:
    """Submissions per student in the last minute, in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, deque[float]] = defaultdict(deque)

    def check(self, student: str, per_minute: int) -> None:
        with self.lock:
            times, moment = self.times[student], time.monotonic()
            while times and moment - times[0] > 60:
                times.popleft()
            if len(times) >= per_minute:
                raise TooMany(f"{student} submitted {len(times)} times in the last minute, the most allowed; "
                              f"wait {60 - (moment - times[0]):.0f} s and submit again")
            times.append(moment)


def safe_member_path(name: str, limits: UploadLimits) -> PurePosixPath:
    """The path of a tar member, refused unless relative, plainly named and not too deep."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise StoreError(f"the upload holds the path {name!r}; only relative paths are allowed")
    if path.parts == (".",):
        return path
    parts = [part for part in path.parts if part != "."]
    bad = next((part for part in parts if not PATH_PART.match(part)), None)
    if bad is not None:
        raise StoreError(f"the upload holds the name {bad[:100]!r}; rename it with letters, digits, spaces and "
                         "'._+()-' only (not starting with a dot or a dash)")
    if parts[-1].lower().endswith(ACTIVE_SUFFIXES):
        raise StoreError(f"the upload holds {name[:200]!r}: web pages, SVG, XML and JavaScript files cannot be "
                         "submitted (they would run in your instructor's browser); remove it, or zip it")
    if len(parts) > limits.max_depth:
        raise StoreError(f"the upload holds {name[:200]!r}, {len(parts)} levels deep; at most {limits.max_depth} "
                         "are allowed")
    return PurePosixPath(*parts)


def untar(payload: bytes, dest: Path, limits: UploadLimits = LIMITS) -> list[str]:
    """Unpack plain files and folders from a (gzipped) tar; refuse links' targets, odd
    names and anything over the limits, all checked from the headers before writing."""
    if len(payload) > limits.max_upload:
        raise TooLarge(f"the upload is {len(payload)} bytes, more than {limits.max_upload}; remove large files "
                       "(data sets, checkpoints) from the assignment folder")
    try:
        archive = tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")
        with archive:
            plan, total = [], 0
            for member in archive:  # reading the headers only decompresses the members counted so far
                path = safe_member_path(member.name, limits)
                if not (member.isdir() or member.isfile()):
                    continue  # links, devices and fifos are dropped
                if len(plan) >= limits.max_entries:
                    raise TooLarge(f"the upload holds more than {limits.max_entries} files and folders")
                total += member.size if member.isfile() else 0
                if total > limits.max_unpacked:
                    raise TooLarge(f"the upload unpacks to more than {limits.max_unpacked} bytes; remove large "
                                   "files (data sets, checkpoints) from the assignment folder")
                plan.append((member, path))
            written = []
            for member, path in plan:
                target = dest.joinpath(*path.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with open(target, "wb") as handle:
                    shutil.copyfileobj(source, handle)
                written.append(path.as_posix())
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise StoreError(f"the upload is not a tar archive that can be read ({error}); "
                         "submit the assignment folder again") from None
    return written
