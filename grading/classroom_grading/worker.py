"""Grade one submission: collect, autograde in the sandbox, write the gradebook, feedback.

Runs in the grading service's worker processes, one submission at a time each.
Everything here goes through nbgrader's own converters and gradebook API; only
the execution is replaced (see `autograde`).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import nbformat
from traitlets.config import Config

from . import autograde, integrity, records, sandbox
from .gradebook import gradebook_url
from .identity import identity_json
from .references import is_current, personalised, reference_file
from .store import TIMESTAMP_DIR, Store, write_json

log = logging.getLogger("classroom_grading.worker")


class GradingError(RuntimeError):
    pass


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def limits(options: dict[str, Any]) -> sandbox.Limits:
    return sandbox.Limits(memory=options["memory"], cpus=options["cpus"], pids=options["pids"],
                          seconds=options["timeout"], cell_seconds=options["cell_timeout"])


def student_identity(options: dict[str, Any], student: str) -> str:
    """The identity a notebook of `student` runs with in the sandbox ("" without a secret)."""
    secret = options.get("identity_secret", "")
    return identity_json(secret, options.get("term", ""), student) if secret else ""


def reference_records(store: Store, assignment: str, options: dict[str, Any], student: str | None = None) -> None:
    """Run the solution (the source notebooks) in the sandbox and keep each test cell's records:
    once per notebook, or, for a personalised notebook, once per student with that student's
    identity (their configuration), cached until the source or the identity changes."""
    source = store.course / "source" / assignment
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise GradingError(f"no source notebooks in {source}; create the assignment in the formgrader")
    folder = store.state / "reference" / assignment
    for path in notebooks:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        nb = nbformat.reads(data.decode(), as_version=4)
        shared = folder / f"{path.stem}.json"
        if not personalised(nb):
            with locked(store.state / "reference" / f".{assignment}.lock"):
                if not is_current(shared, digest):
                    write_json(shared, _solution_records(store, assignment, path, nb, options, "") | {
                        "_source_sha256": digest})
            continue
        if not is_current(shared, digest):
            write_json(shared, {"_source_sha256": digest, "_personalised": personalised(nb)})
        if student is None:
            continue
        identity = student_identity(options, student)
        stamp = {"_source_sha256": digest, "_identity": hashlib.sha256(identity.encode()).hexdigest()}
        out = folder / path.stem / f"{student}.json"
        with locked(store.state / "reference" / f".{assignment}.{student}.lock"):
            if not is_current(out, digest, stamp["_identity"]):
                write_json(out, _solution_records(store, assignment, path, nb, options, identity) | stamp)


def needs_reference(store: Store, assignment: str, student: str, options: dict[str, Any]) -> bool:
    """Whether a personalised notebook of the assignment has no current reference for the student."""
    for path in sorted((store.course / "source" / assignment).glob("*.ipynb")):
        try:
            nb = json.loads(path.read_bytes())
        except ValueError:
            continue
        if personalised(nb):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            identity = hashlib.sha256(student_identity(options, student).encode()).hexdigest()
            if not is_current(store.state / "reference" / assignment / path.stem / f"{student}.json", digest, identity):
                return True
    return False


def prepare(root: str, course_id: str, assignment: str, student: str, options: dict[str, Any]) -> None:
    """Compute a student's references of a personalised assignment before they submit (in a worker)."""
    reference_records(Store(Path(root), course_id), assignment, options, student)


def _solution_records(store: Store, assignment: str, path: Path, nb: Any, options: dict[str, Any],
                      identity: str) -> dict[str, Any]:
    source = store.course / "source" / assignment
    result = sandbox.run(options["image"], sandbox.pack(source, path.name, nb), path.name, limits(options),
                         labels={"org.classroom.deployment": options["deployment"]}, identity=identity)
    if result.notebook is None or len(result.notebook.get("cells", [])) != len(nb.cells):
        raise GradingError(f"the solution of {assignment}/{path.name} did not run in the sandbox "
                           f"({result.status} {result.detail})")
    found: dict[str, Any] = {}
    for cell, ran in zip(nb.cells, result.notebook["cells"]):
        if not autograde.is_test_cell(cell):
            continue
        errors = [o for o in ran.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            raise GradingError(f"the solution of {assignment}/{path.name} fails its own test cell "
                               f"{cell.metadata.nbgrader.get('grade_id')}: {errors[0].get('evalue')}")
        found[cell.metadata.nbgrader["grade_id"]] = {
            name: recs for name, recs in records.from_outputs(ran.get("outputs", [])).items()}
    return found


def init_logging() -> None:
    """Worker processes log to the service's standard error, in its format."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


def init(engines: list[sandbox.Engine], counter: Any) -> None:
    """A new worker process: log as the service does, and take the next engine of the list
    (one entry per sandbox an engine can run at once, the engines taking turns)."""
    init_logging()
    if engines:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        engine = engines[index % len(engines)]
        sandbox.use_engine(engine)
        logging.getLogger("classroom_grading").info("this worker's sandboxes run on %s", engine.url)


def nbgrader_config(store: Store, options: dict[str, Any]) -> Config:
    """The course's own nbgrader_config.py (a header for generated assignments, say), with the
    grading service's pipeline, limits and paths on top: those are the service's to decide."""
    config = Config()
    course_file = store.course / "nbgrader_config.py"
    if course_file.is_file():
        from traitlets.config.loader import PyFileConfigLoader

        try:
            config.merge(PyFileConfigLoader(course_file.name, path=str(store.course)).load_config())
        except Exception as error:  # noqa: BLE001 - a broken course file must not stop grading
            log.warning("ignoring %s (fix it in the formgrader's file browser): %s", course_file, error)
    config.CourseDirectory.root = str(store.course)
    config.CourseDirectory.course_id = store.course_id
    config.CourseDirectory.db_url = gradebook_url(store.course)
    config.Autograde.autograde_preprocessors = autograde.AUTOGRADE_PREPROCESSORS
    config.Autograde.create_student = True
    config.GenerateFeedback.preprocessors = autograde.FEEDBACK_PREPROCESSORS
    config.HTMLExporter.sanitize_html = True  # feedback pages: nbconvert's allow-list, on top of SanitizeSubmission
    config.SandboxExecute.image = options["image"]
    config.SandboxExecute.memory = options["memory"]
    config.SandboxExecute.cpus = float(options["cpus"])
    config.SandboxExecute.pids = int(options["pids"])
    config.SandboxExecute.timeout = int(options["timeout"])
    config.SandboxExecute.cell_timeout = int(options["cell_timeout"])
    config.SandboxExecute.deployment = options["deployment"]
    config.SandboxExecute.identity_secret = options.get("identity_secret", "")
    config.SandboxExecute.identity_term = options.get("term", "")
    config.VerifyRecords.reference_dir = str(store.state / "reference")
    return config


def forget_other_submission(store: Store, student: str, assignment: str, stamp: str) -> None:
    """Drop the gradebook's record of an earlier submission before grading a new one.

    nbgrader updates only the cells it finds: a test cell deleted (or stripped of its
    metadata) in the new submission would keep the old score. Grading the new one from
    an empty record scores a missing test cell 0 (and flags it for the instructor). A
    regrade of the same submission keeps the record, and with it any hand grading.
    """
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(gradebook_url(store.course), store.course_id) as gb:
        try:
            previous = gb.find_submission(assignment, student)
        except MissingEntry:
            return
        if previous.timestamp is None or previous.timestamp.strftime(TIMESTAMP_DIR) != stamp:
            gb.remove_submission(assignment, student)


def grade(root: str, course_id: str, student: str, assignment: str, stamp: str,
          options: dict[str, Any]) -> dict[str, Any]:
    """Grade one submission; returns the score and what the sandbox reported."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    store = Store(Path(root), course_id)
    reference_records(store, assignment, options, student)
    with locked(store.state / "jobs" / f".{student}.lock"):
        submitted = store.collect(student, assignment, stamp)
        config = nbgrader_config(store, options)
        forget_other_submission(store, student, assignment, stamp)
        autograde.RUNS.clear()
        for converter_class in (Autograde, GenerateFeedback):
            coursedir = CourseDirectory(config=config)
            coursedir.assignment_id, coursedir.student_id = assignment, student
            converter = converter_class(coursedir=coursedir, config=config)
            converter.force = True
            converter.start()
        with Gradebook(gradebook_url(store.course), course_id) as gb:
            try:
                submission = gb.find_submission(assignment, student)
            except MissingEntry:
                raise GradingError(f"nbgrader recorded no submission of {assignment} by {student}") from None
            score, max_score = submission.score, submission.max_score
            late = submission.total_seconds_late
            pending = bool(submission.needs_manual_grade)
            cells = {nb.name: [{"grade_id": g.name, "score": g.score, "max_score": g.max_score,
                                "by_hand": g.auto_score is None} for g in nb.grades]
                     for nb in submission.notebooks}
        artifact = None
        if options.get("artifact_secret"):
            artifact = write_artifact(store, student, assignment, stamp, submitted, cells,
                                      {"score": score, "max_score": max_score, "seconds_late": late,
                                       "awaiting_hand_grading": pending}, options)
        released = 0
        # Feedback goes out by itself only when nothing awaits hand grading: a student
        # would otherwise see provisional zeros for their written answers.
        if store.assignment_settings(assignment)["feedback"] == "auto" and not pending:
            released = store.release_feedback(student, assignment, stamp)
    for run in autograde.RUNS:
        if run.get("unprotected"):
            log.warning("%s/%s: test cells %s record nothing and are graded nbgrader-style (unprotected)",
                        assignment, run["notebook"], ", ".join(run["unprotected"]))
    return {"score": score, "max_score": max_score, "seconds_late": late, "sandbox": list(autograde.RUNS),
            "feedback_released": bool(released), "awaiting_hand_grading": pending, "artifact": artifact}


def write_artifact(store: Store, student: str, assignment: str, stamp: str, submitted: Path,
                   cells: dict[str, list[dict[str, Any]]], totals: dict[str, Any],
                   options: dict[str, Any]) -> dict[str, Any]:
    """Write and sign what was graded (see `integrity`): GRADING/artifacts/ASSIGNMENT/STUDENT/STAMP.json.
    Returns {"path", "short_hash", "configuration"} for the job's record."""
    notebooks, hashes = [], []
    for path in sorted(submitted.glob("*.ipynb")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        hashes.append(f"{path.name}:{digest}")
        entry: dict[str, Any] = {"name": path.stem, "sha256": digest, "cells": cells.get(path.stem, []),
                                 "configuration": None, "recorded": {}}
        reference = reference_file(store.state / "reference", assignment, path.stem, student)
        if reference.parent != store.state / "reference" / assignment:  # personalised: the service's configuration
            for recs in json.loads(reference.read_text()).values() if reference.is_file() else []:
                for rec in (recs.get("configuration", []) if isinstance(recs, dict) else []):
                    try:
                        entry["configuration"] = json.loads(rec["values"][0])
                    except (ValueError, IndexError, KeyError):
                        pass
        graded = store.course / "autograded" / student / assignment / path.name
        if graded.is_file():
            for cell in nbformat.read(graded, as_version=4).cells:
                if autograde.is_test_cell(cell):
                    found = integrity.recorded_figures(cell.get("outputs", []))
                    if found:
                        entry["recorded"][cell.metadata.nbgrader["grade_id"]] = found
        notebooks.append(entry)
    configurations = [nb["configuration"] for nb in notebooks if nb["configuration"]]
    body = {"kind": integrity.KIND, "course": store.course_id, "assignment": assignment, "student": student,
            "submitted_at": stamp, "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "short_hash": hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:12],
            "term": options.get("term", ""), **totals, "notebooks": notebooks}
    path = store.artifact_path(student, assignment, stamp)
    write_json(path, integrity.sign(body, options["artifact_secret"]))
    return {"path": str(path.relative_to(store.root)), "short_hash": body["short_hash"],
            "configuration": configurations[0] if len(configurations) == 1 else (configurations or None)}
