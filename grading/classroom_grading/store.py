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
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TIMESTAMP_DIR = "%Y%m%dT%H%M%S.%fZ"
NBGRADER_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f %Z"
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024
MAX_SUBMISSION_FILES = 500
DEFAULT_SETTINGS = {"autograde": True, "feedback": "auto", "deadline": None}


class StoreError(ValueError):
    """Bad input from a client: the message names the input and the fix."""


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
        return {**DEFAULT_SETTINGS, **self.settings().get(assignment, {})}

    def update_settings(self, assignment: str, changes: dict[str, Any]) -> dict[str, Any]:
        check_name("assignment", assignment)
        unknown = set(changes) - set(DEFAULT_SETTINGS)
        if unknown:
            raise StoreError(f"unknown setting(s) {sorted(unknown)}; the settings are {sorted(DEFAULT_SETTINGS)}")
        if "autograde" in changes and not isinstance(changes["autograde"], bool):
            raise StoreError("autograde must be true or false")
        if "feedback" in changes and changes["feedback"] not in ("auto", "manual"):
            raise StoreError("feedback must be 'auto' (released after grading) or 'manual' (from the formgrader)")
        if "deadline" in changes:
            changes = {**changes, "deadline": parse_deadline(changes["deadline"])}
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
    def receive(self, student: str, assignment: str, payload: bytes) -> str:
        """Store a submission under the server's own timestamp; returns that timestamp."""
        check_name("student", student)
        check_name("assignment", assignment)
        if assignment not in self.released():
            raise StoreError(f"assignment {assignment!r} is not released; fetch a released assignment first")
        stamp = now().strftime(TIMESTAMP_DIR)
        target = self.exchange / "inbound" / student / assignment / stamp
        partial = target.with_name(f".{stamp}.partial")
        try:
            untar(payload, partial)
            if not any(partial.glob("*.ipynb")):
                raise StoreError(f"the submission of {assignment!r} holds no notebook; submit the assignment folder")
            (partial / "timestamp.txt").write_text(to_nbgrader_timestamp(stamp))
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return stamp

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
        import hashlib
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


def untar(payload: bytes, dest: Path, max_bytes: int = MAX_SUBMISSION_BYTES,
          max_files: int = MAX_SUBMISSION_FILES) -> list[str]:
    """Unpack plain files and folders from a (gzipped) tar; refuse links, odd paths and excess."""
    if len(payload) > max_bytes:
        raise StoreError(f"the upload is {len(payload)} bytes, more than {max_bytes}; remove large files "
                         "(data sets, checkpoints) from the assignment folder")
    try:
        archive = tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")
    except tarfile.TarError as error:
        raise StoreError(f"the upload is not a tar archive ({error})") from None
    written, total = [], 0
    with archive:
        for member in archive:
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts or not path.parts:
                raise StoreError(f"the upload holds the path {member.name!r}; only relative paths are allowed")
            if member.isdir():
                (dest.joinpath(*path.parts)).mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                continue  # links, devices and fifos are dropped
            total += member.size
            if total > max_bytes or len(written) >= max_files:
                raise StoreError(f"the upload unpacks to more than {max_bytes} bytes or {max_files} files")
            target = dest.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            with open(target, "wb") as handle:
                shutil.copyfileobj(source, handle)
            written.append(path.as_posix())
    return written
