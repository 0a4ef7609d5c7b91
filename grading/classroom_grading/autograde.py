"""nbgrader's autograder with execution moved into the sandbox and the verdict outside it.

`SandboxExecute` takes the place of nbgrader's `Execute` preprocessor: the notebook
(its test cells already restored from the gradebook by nbgrader's `OverwriteCells`)
runs in a throwaway container, and only the cells' outputs come back into the
grader's own copy of the notebook. `VerifyRecords` then decides each test cell: the
values it recorded must equal those of the instructor's solution (see `records`);
otherwise it gets an error output, which nbgrader's `SaveAutoGrades` scores as 0.
A test cell that records nothing is graded on its outputs alone, as nbgrader does,
and reported as unprotected.

Student content is untrusted wherever staff see it. `SanitizeSubmission` cleans the
graded notebook before nbgrader stores it (the formgrader's grading view, its
JupyterLab and feedback all read that copy): no script, no event handler, no
active markup in markdown, outputs, attachments or metadata; and every HTML page
rendered from it is sanitized again by nbconvert (`HTMLExporter.sanitize_html`).

`HideHiddenTests` and `FeedbackOutputs` run in `generate_feedback`: feedback never
shows hidden tests, nor anything the student's code printed while hidden tests were
in the notebook (it could print them): a notebook with hidden tests gets the outputs
the student submitted, and each test cell the verdict decided outside the sandbox.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, GetGrades, IgnorePattern,
                                    LimitOutput, NbGraderPreprocessor, SaveAutoGrades)
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from traitlets import Float, Int, Unicode

from . import RECORD_MIME, records
from .identity import identity_json
from .references import reference_file

VERDICT = "GraderVerdict"
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# What the sandbox runs of this process reported (the worker reads it after each grading).
RUNS: list[dict[str, Any]] = []


def is_test_cell(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def has_hidden_tests(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and HIDDEN_BEGIN in cell.get("source", "")


def visible_source(source: str) -> str:
    """A test cell's source with its hidden regions replaced by one comment line."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            hidden = True
            kept.append(line.split("#")[0] + "# (hidden tests are not shown)")
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def fail_cell(cell: Any, message: str) -> None:
    """Give a test cell the grader's failing verdict, as its first output: nbgrader grades a cell
    by its outputs in order and stops at the first error or execute_result (whose value it takes
    as a partial grade, or full marks), so a result the student's code produced must not come
    before the verdict."""
    cell.outputs.insert(0, nbformat.v4.new_output(
        "error", ename=VERDICT, evalue=message, traceback=[f"{VERDICT}: {message}"]))


def merge_outputs(nb: Any, executed: dict[str, Any] | None) -> int:
    """Copy only outputs and execution counts from the sandbox's notebook; returns cells taken."""
    cells = executed.get("cells") if isinstance(executed, dict) else None
    if not isinstance(cells, list) or len(cells) != len(nb.cells):
        return 0
    taken = 0
    for mine, theirs in zip(nb.cells, cells):
        if mine.cell_type != "code" or not isinstance(theirs, dict):
            continue
        outputs = []
        for output in theirs.get("outputs") or []:
            try:
                node = nbformat.from_dict(output)
                nbformat.validator.validate(node, ref="output", version=4, version_minor=4)
            except Exception:  # noqa: BLE001 - a malformed output is dropped
                continue
            outputs.append(node)
        count = theirs.get("execution_count")
        mine.outputs = outputs
        mine.execution_count = count if isinstance(count, int) and not isinstance(count, bool) else None
        taken += 1
    return taken


class SandboxExecute(NbGraderPreprocessor):
    """Execute the notebook in a sandbox container (replaces nbgrader's Execute)."""

    image = Unicode("", help="The image sandboxes run from (the CPU single-user image).").tag(config=True)
    memory = Unicode("1g").tag(config=True)
    cpus = Float(1.0).tag(config=True)
    pids = Int(256).tag(config=True)
    timeout = Int(300, help="Seconds for the whole notebook.").tag(config=True)
    cell_timeout = Int(120, help="Seconds for one cell.").tag(config=True)
    deployment = Unicode("classroom").tag(config=True)
    identity_secret = Unicode("", help="The deployment's identity secret: with it, each notebook runs with "
                              "the submitting student's identity (personalised labs).").tag(config=True)
    identity_term = Unicode("", help="The term, part of every identity (grading.term).").tag(config=True)

    def preprocess(self, nb, resources):
        name = f"{resources['unique_key']}.ipynb"
        folder = Path(resources["metadata"]["path"])
        clean = nbformat.from_dict(json.loads(json.dumps(nb)))
        for cell in clean.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        from . import sandbox  # the Docker SDK: in the grading service only

        limits = sandbox.Limits(memory=self.memory, cpus=self.cpus, pids=self.pids,
                                seconds=self.timeout, cell_seconds=self.cell_timeout)
        payload = sandbox.pack(folder, name, clean)
        student = resources["nbgrader"]["student"]
        identity = identity_json(self.identity_secret, self.identity_term, student) if self.identity_secret else ""
        result = sandbox.run(self.image, payload, name, limits,
                             labels={"org.classroom.deployment": self.deployment}, identity=identity)
        merge_outputs(nb, result.notebook)
        run = {"notebook": resources["unique_key"], "status": result.status,
               "seconds": round(result.seconds, 2), "detail": result.detail}
        resources.setdefault("classroom", {})["sandbox"] = run
        RUNS.append(run)
        self.log.info("Sandbox run of %s: %s in %.1f s %s", name, result.status, result.seconds, result.detail)
        return nb, resources


class VerifyRecords(NbGraderPreprocessor):
    """Decide each test cell outside the sandbox, against the solution's records."""

    reference_dir = Unicode("", help="Folder of the solutions' records: REFERENCE_DIR/ASSIGNMENT/NOTEBOOK.json").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = reference_file(Path(self.reference_dir), info["assignment"], info["notebook"], info["student"])
        reference = json.loads(path.read_text()) if path.is_file() else {}
        sandbox_status = resources.get("classroom", {}).get("sandbox", {}).get("status", "")
        unprotected = []
        for cell in nb.cells:
            if not is_test_cell(cell):
                continue
            grade_id = cell.metadata.nbgrader.get("grade_id", "")
            expected = {name: [records.parse(r) for r in recs]
                        for name, recs in reference.get(grade_id, {}).items()}
            if cell.execution_count is None and not any(o.get("output_type") == "error" for o in cell.outputs):
                fail_cell(cell, f"this test did not run (the sandbox ended with: {sandbox_status or 'no result'})")
                continue
            if not expected:
                unprotected.append(grade_id)
                continue
            problems = records.verdict(expected, records.from_outputs(cell.outputs))
            if problems:
                fail_cell(cell, describe_problems(problems, list(expected), visible_source(cell.source)))
        if RUNS and RUNS[-1]["notebook"] == resources["unique_key"]:
            RUNS[-1]["unprotected"] = unprotected
        return nb, resources


def describe_problems(problems: list[str], names: list[str], visible: str) -> str:
    """The verdict's message: each failed record ("name: why") where the visible part of
    the test names it, the others counted as hidden checks (their names describe them)."""
    shown = [p for p in problems
             if any(p.startswith(f"{name}: ") and repr(name)[1:-1] in visible for name in names)]
    hidden = len(problems) - len(shown)
    if hidden:
        shown.append(f"{hidden} hidden check(s) failed")
    return "; ".join(shown)


class SanitizeSubmission(NbGraderPreprocessor):
    """Make the graded notebook safe to show to anyone: allow-listed HTML only, no script,
    and no metadata that templates might print (only nbgrader's, with a plain grade id)."""

    def preprocess(self, nb, resources):
        sanitizer = SanitizeHTML(parent=self, strip=True)
        sanitizer.safe_output_keys = set(sanitizer.safe_output_keys) | {RECORD_MIME}
        sanitizer.sanitized_output_types = {"text/html", "text/markdown"}
        nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items()
                                          if k in ("kernelspec", "language_info")})
        for cell in nb.cells:
            cell.metadata = nbformat.from_dict(safe_cell_metadata(cell.get("metadata", {})))
            if "attachments" in cell:
                cell.attachments = safe_attachments(cell.attachments)
            if cell.cell_type == "code":
                cell.outputs = [clean_output(o) for o in cell.outputs]
            sanitizer.preprocess_cell(cell, resources, 0)
        return nb, resources


# A transparent 1x1 PNG: what an attachment of another kind (SVG may carry script) becomes,
# so that markdown referring to it still renders.
BLANK_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
RASTER = ("image/png", "image/jpeg", "image/gif")


def safe_attachments(attachments: Any) -> dict[str, dict[str, str]]:
    """A markdown cell's pasted images, raster ones only (as base64 strings)."""
    safe = {}
    for name, bundle in (attachments or {}).items() if isinstance(attachments, dict) else []:
        kept = {k: v for k, v in bundle.items() if k in RASTER and isinstance(v, str)} \
            if isinstance(bundle, dict) else {}
        safe[str(name)] = kept or {"image/png": BLANK_PNG}
    return safe


def safe_cell_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    nbgrader = metadata.get("nbgrader")
    if not isinstance(nbgrader, dict) or not SAFE_ID.match(str(nbgrader.get("grade_id", ""))):
        return {}
    kept = {k: v for k, v in nbgrader.items()
            if k in ("grade", "solution", "locked", "task", "schema_version", "grade_id", "checksum", "cell_type")
            and isinstance(v, (bool, int, str))}
    if isinstance(nbgrader.get("points"), (int, float)) and not isinstance(nbgrader.get("points"), bool):
        kept["points"] = nbgrader["points"]
    return {"nbgrader": kept}


def clean_output(output: Any) -> Any:
    """An output with only text, images as data, HTML/markdown (sanitized next) and records."""
    kind = output.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=output.get("name", "stdout"), text=output.get("text", ""))
    if kind == "error":
        return nbformat.v4.new_output("error", ename=str(output.get("ename", "")), evalue=str(output.get("evalue", "")),
                                      traceback=[str(t) for t in output.get("traceback", [])])
    data = {k: v for k, v in (output.get("data") or {}).items()
            if k in ("text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg", RECORD_MIME)}
    if kind == "execute_result":
        return nbformat.v4.new_output("execute_result", data=data, execution_count=output.get("execution_count"))
    return nbformat.v4.new_output("display_data", data=data)


class RefuseLocalExecution(NbGraderPreprocessor):
    """In the formgrader: autograding here would run student code next to the gradebook."""

    def preprocess(self, nb, resources):
        raise RuntimeError("Autograding runs in the grading service, in a sandbox: submissions are graded "
                           "as they arrive; to grade again, use Regrade on /services/grading/.")


class HideHiddenTests(NbGraderPreprocessor):
    """In feedback: drop the hidden test regions of test cells."""

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if has_hidden_tests(cell):
                cell.source = visible_source(cell.source)
        return nb, resources


class FeedbackOutputs(NbGraderPreprocessor):
    """In feedback of a notebook that had hidden tests: no output of the grading run.

    The student's code ran next to the hidden tests and could print them anywhere, in
    any encoding. So answer cells show the outputs the student submitted, and test
    cells show only the verdict the grader decided outside the sandbox. A notebook
    without hidden tests has nothing to hide and keeps its outputs.
    """

    def preprocess(self, nb, resources):
        if not any(HIDDEN_BEGIN in cell.get("source", "") for cell in nb.cells):
            return nb, resources
        by_id, in_order = self.submitted_cells(resources)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell):
                verdicts = [o for o in cell.outputs if o.get("output_type") == "error" and o.get("ename") == VERDICT]
                failed = any(o.get("output_type") == "error" for o in cell.outputs)
                if failed and not verdicts:
                    verdicts = [nbformat.v4.new_output("error", ename=VERDICT, evalue="this test failed",
                                                       traceback=[f"{VERDICT}: this test failed"])]
                cell.outputs = verdicts
            else:
                theirs = by_id.get(cell.get("id")) or (in_order[index] if len(in_order) == len(nb.cells) else None)
                cell.outputs = [clean_output(o) for o in (theirs or {}).get("outputs", [])]
            cell.execution_count = None
        return nb, resources

    @staticmethod
    def submitted_cells(resources) -> tuple[dict[str, Any], list[Any]]:
        """The submitted notebook's cells by cell id, and in order (empty when it is not there)."""
        info = resources.get("nbgrader", {})
        graded = Path(resources.get("metadata", {}).get("path", "/"))  # ROOT/autograded/STUDENT/ASSIGNMENT
        if len(graded.parents) < 3:
            return {}, []
        path = graded.parents[2] / "submitted" / info.get("student", "") / info.get("assignment", "") \
            / f"{info.get('notebook', '')}.ipynb"
        try:
            cells = nbformat.read(path, as_version=4).cells
        except Exception:  # noqa: BLE001 - a missing or broken submission shows no outputs
            return {}, []
        return {cell["id"]: cell for cell in cells if "id" in cell}, list(cells)


# The order matters: execution first; the verdict before anything changes outputs;
# sanitizing before nbgrader stores the notebook that staff open.
AUTOGRADE_PREPROCESSORS = [SandboxExecute, VerifyRecords, IgnorePattern, SanitizeSubmission,
                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
# Outputs are replaced before the hidden regions go (both read the hidden markers).
FEEDBACK_PREPROCESSORS = [FeedbackOutputs, HideHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
