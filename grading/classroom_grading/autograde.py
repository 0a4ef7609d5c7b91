"""nbgrader's autograder with execution moved into the sandbox and the verdict outside it.

`SandboxExecute` takes the place of nbgrader's `Execute` preprocessor: the notebook
(its test cells already restored from the gradebook by nbgrader's `OverwriteCells`)
runs in a throwaway container, and only the cells' outputs come back into the
grader's own copy of the notebook. `VerifyRecords` then decides each test cell: the
values it recorded must equal those of the instructor's solution (see `records`);
otherwise it gets an error output, which nbgrader's `SaveAutoGrades` scores as 0.
A test cell that records nothing is graded on its outputs alone, as nbgrader does,
and reported as unprotected.

`HideHiddenTests` runs in `generate_feedback`: feedback never shows hidden tests.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, GetGrades, IgnorePattern,
                                    LimitOutput, NbGraderPreprocessor, SaveAutoGrades)
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from traitlets import Float, Int, Unicode

from . import RECORD_MIME, records

VERDICT = "GraderVerdict"
# What the sandbox runs of this process reported (the worker reads it after each grading).
RUNS: list[dict[str, Any]] = []


def is_test_cell(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def fail_cell(cell: Any, message: str) -> None:
    cell.outputs.append(nbformat.v4.new_output(
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
        result = sandbox.run(self.image, payload, name, limits,
                             labels={"org.classroom.deployment": self.deployment})
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
        path = Path(self.reference_dir) / resources["nbgrader"]["assignment"] / f"{resources['nbgrader']['notebook']}.json"
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
                fail_cell(cell, "; ".join(problems))
        resources.setdefault("classroom", {})["unprotected"] = unprotected
        return nb, resources


class RefuseLocalExecution(NbGraderPreprocessor):
    """In the formgrader: autograding here would run student code next to the gradebook."""

    def preprocess(self, nb, resources):
        raise RuntimeError("Autograding runs in the grading service, in a sandbox: submissions are graded "
                           "as they arrive; to grade again, use Regrade on /services/grading/.")


class HideHiddenTests(NbGraderPreprocessor):
    """In feedback: drop hidden test regions and the tracebacks of cells that had them."""

    begin = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end = Unicode("END HIDDEN TESTS").tag(config=True)

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if self.begin not in cell.source:
                continue
            kept, hidden = [], False
            for line in cell.source.split("\n"):
                if self.begin in line:
                    hidden = True
                    kept.append(line.split("#")[0] + "# (hidden tests are not shown)")
                elif self.end in line:
                    hidden = False
                elif not hidden:
                    kept.append(line)
            cell.source = "\n".join(kept)
            # Records name what the hidden tests check: they stay with the grader.
            cell.outputs = [o for o in cell.get("outputs", [])
                            if RECORD_MIME not in (o.get("data") or {})]
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return nb, resources


AUTOGRADE_PREPROCESSORS = [SandboxExecute, VerifyRecords, IgnorePattern, ClearMetadataPreprocessor,
                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
FEEDBACK_PREPROCESSORS = [HideHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
