#!/usr/bin/env python3
"""Prove every course notebook: it teaches what it grades, and grading it works.

    python course/prove.py [--units u03-mlp-from-scratch ...] [--full] [--workdir DIR] [--report FILE]

For each nbgrader source notebook under course/source/<unit>/ this:

1. refuses committed outputs (code cells must have no outputs and no execution count);
2. generates the student version with `nbgrader generate_assignment`;
3. autogrades the source itself (solutions in place) as student `solution`, in fast mode,
   and requires full marks on the autograded cells (manually graded ones are not counted);
4. autogrades the untouched student version as student `blank`, and requires that it runs
   to the end without crashing the grader and scores zero;
5. times the solution run and fails a notebook that runs in under MIN_SECONDS (it did not
   really run) or past its budget in course/budgets.yml.

`--full` runs at full size (fast mode off) against the `full` budgets instead. Runs where
nbgrader and nncourse are installed: inside the CPU image for `make test`, or in any venv
with them. Exit status 0 only when every notebook passes; the table says why one did not.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import yaml

COURSE = Path(__file__).resolve().parent
SOURCE = COURSE / "source"
BUDGETS = COURSE / "budgets.yml"
MIN_SECONDS = 1.0
FAST_MODE_ENV = "NNCOURSE_FAST_MODE"

NBGRADER_CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "prove"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.ExecutePreprocessor.timeout = {timeout}
c.Execute.timeout = {timeout}
"""


@dataclass
class Result:
    """What proving one notebook found."""

    unit: str
    notebook: str
    max_score: float = 0.0
    solution_score: float | None = None
    blank_score: float | None = None
    seconds: float | None = None
    budget: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def committed_outputs(path: Path) -> list[str]:
    """Cells of a notebook that carry outputs or execution counts."""
    notebook = nbformat.read(path, as_version=4)
    return [cell.get("id", str(i)) for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def load_budgets() -> dict[str, dict]:
    """Budgets per `unit/notebook.ipynb`: fast and full seconds, and whether a GPU is needed."""
    return yaml.safe_load(BUDGETS.read_text()) or {}


def nbgrader(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run an nbgrader command in the course folder `root`.

    nbgrader runs `alembic` as a command to create its gradebook, so this Python's
    bin folder goes first on PATH.
    """
    env = dict(env or os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, capture_output=True,
                          text=True, env=env)


def scores(root: Path, unit: str, notebook: str, student: str) -> tuple[float, float]:
    """(score, max score) of the autograded cells of one notebook, from the gradebook.

    Manually graded cells (a written answer, presentation) are left out: no
    autograder can give their points.
    """
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root}/gradebook.db") as gradebook:
        submission = gradebook.find_submission_notebook(notebook, unit, student)
        auto = [grade for grade in submission.grades if grade.auto_score is not None]
        return sum(g.score for g in auto), sum(g.max_score for g in auto)


def prove_unit(unit: Path, root: Path, budgets: dict[str, dict], full: bool) -> list[Result]:
    """Prove every notebook of one unit; return a Result per notebook."""
    results = []
    notebooks = sorted(unit.glob("*.ipynb"))
    shutil.copytree(unit, root / "source" / unit.name)
    generated = nbgrader(root, "generate_assignment", unit.name, "--force")
    for path in notebooks:
        key = f"{unit.name}/{path.name}"
        budget = budgets.get(key, {}).get("full" if full else "fast")
        result = Result(unit.name, path.name, budget=budget)
        results.append(result)
        if outputs := committed_outputs(path):
            result.problems.append(f"committed outputs in cells {', '.join(outputs[:5])}: clear them "
                                   "(Kernel > Restart and Clear Outputs) before committing")
        if budget is None:
            result.problems.append(f"no {'full' if full else 'fast'} budget for {key} in course/budgets.yml")
        if generated.returncode != 0:
            result.problems.append("nbgrader generate_assignment failed: " + generated.stderr[-1500:])
    if generated.returncode != 0:
        return results

    release = root / "release" / unit.name
    for student, origin in (("solution", unit), ("blank", release)):
        target = root / "submitted" / student / unit.name
        target.mkdir(parents=True)
        for path in notebooks:
            shutil.copy(origin / path.name, target / path.name)
        (target / "timestamp.txt").write_text("2026-01-01 00:00:00.000000 UTC")

    env = dict(os.environ, **{FAST_MODE_ENV: "0" if full else "1"})
    for result in results:
        stem = result.notebook[:-len(".ipynb")]
        for student in ("solution", "blank"):
            began = time.monotonic()
            graded = nbgrader(root, "autograde", unit.name, "--student", student, "--notebook", stem,
                              "--force", env=env)
            seconds = time.monotonic() - began
            if graded.returncode != 0:
                result.problems.append(f"autograde of the {student} version crashed: {graded.stderr[-1500:]}")
                continue
            score, max_score = scores(root, unit.name, stem, student)
            if student == "solution":
                result.max_score = max_score
                result.solution_score, result.seconds = score, round(seconds, 1)
                if score < max_score:
                    result.problems.append(f"the source with its solutions scores {score}/{max_score}, "
                                           "not full marks: a test or a solution is wrong")
                if seconds < MIN_SECONDS:
                    result.problems.append(f"ran in {seconds:.2f} s: it did not really run")
                if result.budget is not None and seconds > result.budget:
                    result.problems.append(f"took {seconds:.0f} s, over its budget of {result.budget} s")
            else:
                result.blank_score = score
                if score != 0:
                    result.problems.append(f"the untouched student version scores {score}/{result.max_score}, "
                                           "not zero: a test passes without the student's work")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", nargs="*", help="unit folder names under course/source (default: all)")
    parser.add_argument("--full", action="store_true", help="full size (fast mode off), full budgets")
    parser.add_argument("--workdir", type=Path, help="nbgrader course folder to use (default: a temporary one)")
    parser.add_argument("--report", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    units = sorted(p for p in SOURCE.iterdir() if p.is_dir() and (not args.units or p.name in args.units))
    if not units:
        print(f"no units found under {SOURCE} matching {args.units}", file=sys.stderr)
        return 2
    budgets = load_budgets()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="prove-"))
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    timeout = 3600 if args.full else 600
    (workdir / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(root=str(workdir), timeout=timeout))

    results: list[Result] = []
    for unit in units:
        results += prove_unit(unit, workdir, budgets, args.full)

    mode = "full size" if args.full else "fast mode"
    print(f"\n{'notebook':<52} {'solution':>9} {'blank':>7} {mode:>10} {'budget':>7}  verdict")
    for r in results:
        solution = f"{r.solution_score:g}/{r.max_score:g}" if r.solution_score is not None else "-"
        blank = f"{r.blank_score:g}" if r.blank_score is not None else "-"
        seconds = f"{r.seconds:.1f} s" if r.seconds is not None else "-"
        print(f"{r.unit + '/' + r.notebook:<52} {solution:>9} {blank:>7} {seconds:>10} {r.budget or '-':>7}  "
              + ("ok" if r.ok else "FAIL"))
        for problem in r.problems:
            print(f"    - {problem}")
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in results], indent=2))
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
