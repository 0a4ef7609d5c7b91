"""nbgrader exchange plugins for the classroom.

Students' servers (`Remote*`): every operation is an HTTP call to the grading
service with the server's hub token (`$JUPYTERHUB_API_TOKEN`), so identity comes
from the hub, not from the container's user, and the service stamps the time.
There is no shared folder at all.

The formgrader (`Course*`): instructors' release, collect and feedback release work
on the course volume (mounted only in the formgrader and the grading service),
in the layout `store` describes.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nbgrader.exchange.abc import (Exchange, ExchangeCollect, ExchangeFetchAssignment, ExchangeFetchFeedback,
                                   ExchangeList, ExchangeReleaseAssignment, ExchangeReleaseFeedback,
                                   ExchangeSubmit)
from nbgrader.utils import ignore_patterns
from traitlets import Unicode, default

from .store import Store, StoreError, check_name, untar


# --- Students: over HTTP, as themselves ------------------------------------------------
class RemoteExchange(Exchange):
    """Every plugin below replaces nbgrader's start() whole: no init_src/copy_files steps."""

    service_url = Unicode(help="The grading service's URL ($CLASSROOM_GRADING_URL)").tag(config=True)

    @default("service_url")
    def _service_url_default(self) -> str:
        return os.environ.get("CLASSROOM_GRADING_URL", "")

    def call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not self.service_url or not token:
            self.fail("This server is not connected to the classroom's grading service "
                      "($CLASSROOM_GRADING_URL or $JUPYTERHUB_API_TOKEN is missing); ask your instructor.")
        request = urllib.request.Request(self.service_url.rstrip("/") + "/" + path, data=body, method=method,
                                         headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", "")
            except ValueError:
                message = ""
            self.fail(f"The grading service answered {error.code}: {message or error.reason}")
        except urllib.error.URLError as error:
            self.fail(f"The grading service cannot be reached ({error.reason}); try again in a minute.")
        raise AssertionError("unreachable")

    def assignments(self) -> list[dict[str, Any]]:
        return json.loads(self.call("GET", "api/assignments"))["assignments"]

    def local_dir(self, assignment_id: str) -> Path:
        return Path(self.assignment_dir) / assignment_id


class RemoteList(ExchangeList, RemoteExchange):
    def start(self):  # noqa: D102 - nbgrader's list, from the service
        if self.remove:
            self.fail("Removing released or submitted assignments is not possible in this classroom.")
        found = self.assignments()
        wanted = self.coursedir.assignment_id
        if wanted:
            found = [a for a in found if a["assignment_id"] == wanted]
        return self.submitted(found) if (self.cached or self.inbound) else self.released(found)

    def released(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = []
        for a in found:
            local = self.local_dir(a["assignment_id"])
            fetched = local.is_dir()
            path = str(local.resolve()) if fetched else a["assignment_id"]
            result.append({
                "course_id": a["course_id"], "assignment_id": a["assignment_id"],
                "status": "fetched" if fetched else "released", "path": path,
                "notebooks": [{"notebook_id": nb, "path": os.path.join(path, f"{nb}.ipynb")}
                              for nb in a["notebooks"]],
            })
        return result

    def submitted(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import hashlib
        student = os.environ.get("JUPYTERHUB_USER", "")
        result = []
        for a in found:
            if not a["submissions"]:
                continue
            local = self.local_dir(a["assignment_id"])
            submissions = []
            for sub in a["submissions"]:
                feedback_dir = local / "feedback" / sub["timestamp"]
                notebooks = []
                for nb in a["notebooks"]:
                    local_file = feedback_dir / f"{nb}.html"
                    has_local = local_file.is_file()
                    remote = sub["feedback"].get(nb)
                    notebooks.append({
                        "notebook_id": nb, "path": str(local / f"{nb}.ipynb"),
                        "has_local_feedback": has_local, "has_exchange_feedback": remote is not None,
                        "local_feedback_path": str(local_file) if has_local else None,
                        "feedback_updated": bool(has_local and remote
                                                 and hashlib.md5(local_file.read_bytes()).hexdigest() != remote),
                    })
                has_local = bool(notebooks) and all(n["has_local_feedback"] for n in notebooks)
                submissions.append({
                    "course_id": a["course_id"], "student_id": student, "assignment_id": a["assignment_id"],
                    "timestamp": sub["timestamp"], "status": "submitted", "path": str(local),
                    "notebooks": notebooks, "has_local_feedback": has_local,
                    "has_exchange_feedback": bool(notebooks) and all(n["has_exchange_feedback"] for n in notebooks),
                    "feedback_updated": any(n["feedback_updated"] for n in notebooks),
                    "local_feedback_path": str(feedback_dir) if has_local else None,
                    "grading": sub.get("status"),
                })
            result.append({"course_id": a["course_id"], "student_id": student,
                           "assignment_id": a["assignment_id"], "status": "submitted",
                           "submissions": submissions})
        return result


def _extract(payload: bytes, dest: Path, overwrite: bool) -> list[str]:
    """Unpack a tar from the service; never overwrite the student's files unless asked."""
    written = []
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as archive:
        for member in archive:
            parts = Path(member.name).parts
            if not member.isfile() or Path(member.name).is_absolute() or ".." in parts:
                continue
            target = dest.joinpath(*parts)
            if target.exists() and not overwrite:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            written.append(member.name)
    return written


class RemoteFetchAssignment(ExchangeFetchAssignment, RemoteExchange):
    def start(self):  # noqa: D102
        assignment = self.coursedir.assignment_id
        dest = self.local_dir(assignment)
        if dest.exists() and not self.replace_missing_files:
            self.fail(f"You already have {assignment} in {dest}. Rename or delete that folder to fetch it again, "
                      "or fetch with --replace to restore missing files.")
        payload = self.call("GET", f"api/assignments/{assignment}/release.tar.gz")
        written = _extract(payload, dest, overwrite=False)
        self.log.info("Fetched %s: %d file(s) into %s", assignment, len(written), dest)


class RemoteSubmit(ExchangeSubmit, RemoteExchange):
    def start(self):  # noqa: D102
        assignment = self.coursedir.assignment_id
        source = self.local_dir(assignment)
        if not source.is_dir():
            self.fail(f"There is no folder {source} to submit; fetch {assignment} first.")
        buffer = io.BytesIO()
        skip = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                               max_file_size=self.coursedir.max_file_size, log=self.log)
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for folder, dirs, files in os.walk(source):
                ignored = skip(folder, dirs + files)
                dirs[:] = [d for d in dirs if d not in ignored and d != "feedback"]
                for name in files:
                    path = Path(folder) / name
                    if name not in ignored and path.is_file() and not path.is_symlink():
                        archive.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
        reply = json.loads(self.call("POST", f"api/assignments/{assignment}/submissions", buffer.getvalue()))
        self.timestamp = reply["timestamp"]
        self.log.info("Submitted %s at %s (server time)", assignment, self.timestamp)


class RemoteFetchFeedback(ExchangeFetchFeedback, RemoteExchange):
    def start(self):  # noqa: D102
        assignment = self.coursedir.assignment_id
        payload = self.call("GET", f"api/assignments/{assignment}/feedback.tar.gz")
        written = _extract(payload, self.local_dir(assignment) / "feedback", overwrite=True)
        self.log.info("Fetched feedback for %s: %s", assignment, ", ".join(written) or "none")


# --- Instructors: the formgrader, on the course volume -----------------------------------
class CourseExchange(Exchange):
    course_root = Unicode("/srv/course", help="Where the course volume is mounted").tag(config=True)

    @property
    def store(self) -> Store:
        return Store(Path(self.course_root), self.coursedir.course_id)


class CourseReleaseAssignment(ExchangeReleaseAssignment, CourseExchange):
    def start(self):  # noqa: D102
        assignment = check_name("assignment", self.coursedir.assignment_id)
        source = Path(self.coursedir.format_path(self.coursedir.release_directory, ".", assignment))
        if not source.is_dir():
            self.fail(f"Nothing to release: {source} does not exist. Generate the assignment first.")
        dest = self.store.exchange / "outbound" / assignment
        if dest.exists() and not self.force:
            self.fail(f"{assignment} is already released; release with force to replace it.")
        staging = dest.with_name(f".{assignment}.releasing")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        self.log.info("Released %s", assignment)
        for notebook, cells in self.store.unprotected(assignment).items():
            self.log.warning("%s/%s: test cells %s record nothing, so they are graded 'no error = full marks' "
                             "and a student can pass them without the work; make each record the values it "
                             "checks with nncourse.record (course/AUTHORING.md)", assignment, notebook,
                             ", ".join(cells))


class CourseCollect(ExchangeCollect, CourseExchange):
    def start(self):  # noqa: D102
        store, assignment = self.store, self.coursedir.assignment_id
        for student, name, stamp in store.all_submissions():
            if name == assignment and stamp == store.submissions(student, name)[-1]:
                store.collect(student, name, stamp)
                self.log.info("Collected %s's submission of %s (%s)", student, name, stamp)


class CourseReleaseFeedback(ExchangeReleaseFeedback, CourseExchange):
    def start(self):  # noqa: D102
        store, assignment = self.store, self.coursedir.assignment_id
        wanted = self.coursedir.student_id
        for student, name, stamp in store.all_submissions():
            if name != assignment or (wanted not in ("*", "", None) and student != wanted):
                continue
            if stamp == store.submissions(student, name)[-1]:
                count = store.release_feedback(student, name, stamp)
                self.log.info("Released %d feedback file(s) to %s for %s", count, student, name)


class CourseList(ExchangeList, CourseExchange):
    def start(self):  # noqa: D102 - what the formgrader asks: which assignments are released
        store = self.store
        wanted = self.coursedir.assignment_id
        if self.remove:  # the formgrader's "unrelease"; submissions stay
            for name in store.released():
                if not wanted or wanted == name:
                    shutil.rmtree(store.exchange / "outbound" / name)
                    self.log.info("Unreleased %s", name)
            return []
        return [{"course_id": store.course_id, "assignment_id": name, "status": "released",
                 "path": str(store.exchange / "outbound" / name),
                 "notebooks": [{"notebook_id": nb, "path": str(store.exchange / "outbound" / name / f"{nb}.ipynb")}
                               for nb in store.release_notebooks(name)]}
                for name in store.released() if not wanted or wanted == name]


__all__ = ["RemoteList", "RemoteFetchAssignment", "RemoteSubmit", "RemoteFetchFeedback",
           "CourseReleaseAssignment", "CourseCollect", "CourseReleaseFeedback", "CourseList", "StoreError", "untar"]
