#!/usr/bin/env python3
"""Prove every course notebook: it grades as the grading service grades it, and cheating earns nothing.

    python course/prove.py [--units UNIT ...] [--source DIR]
                           [--executor local | --executor docker --image IMAGE [--deployment NAME]]
                           [--all-attacks | --attacks NAME ...] [--workers N]
                           [--report FILE] [--workdir DIR] [--verbose]
    python course/prove.py --full [--units UNIT ...]

`--source DIR` proves the unit folders of another folder (its budgets.yml and
substitutes/ are the ones beside it), e.g. the test lab of tests/integration/assignment.py
written out as a unit.

What it runs
------------
Each unit folder under course/source/ is one assignment, graded the way the classroom
grades it, through the grading service's own code (grading/classroom_grading):

1. A temporary course volume laid out as the service's `Store`; the unit is generated
   with nbgrader's `GenerateAssignment` (as the formgrader does) and released into
   the exchange with the formgrader's `CourseReleaseAssignment`.
2. Each submission goes in with `Store.receive` (a tar of the assignment folder, as
   the exchange plugin sends it) and is graded with `classroom_grading.worker.grade`:
   the solution's reference records (one run of the source notebook), then nbgrader's
   autograde with `SandboxExecute` and `VerifyRecords`, in the sandbox, with the
   service's limits (`grading` in ansible/config/defaults.yml: memory, cpus, pids,
   seconds per notebook and per cell), in fast mode (the sandbox sets it). Scores are
   read from the gradebook, autograded cells only (hand-graded ones are left out).
3. `--executor docker --image IMAGE` runs each notebook in a real sandbox container
   from the CPU image, labelled `org.classroom.deployment=NAME` (`--deployment`, by
   default a fresh course-proof-* name that no deployment's clean-up touches); every
   one left at the end is removed. `make test` runs it this way from the hub image,
   where the grading service runs, with the host's Docker socket
   (tests/integration/test_course_proof.py). `--executor local` (the default, for
   authors without Docker) runs the same harness as a plain subprocess
   (`sandbox.run_local`, replacing `sandbox.run` in this program only): no isolation
   and no memory or process limit, so it leaves out the attacks that only the
   sandbox's limits contain (the fork bomb, the memory hog). Submissions are graded
   `--workers` at a time (default: one per core, as the service runs one worker per
   core); each unit's solution goes first, since every other submission of the unit
   waits for its reference records.

Why each check
--------------
A notebook fails when:

- it has committed outputs (students would see the answers), or no fast budget in
  course/budgets.yml;
- an autograded test cell records nothing: statically (no `record(` call in its
  source, hidden tests included) or in the solution's run (no record came back).
  Such a cell is graded nbgrader-style, "no error = full marks", and one cell pasted
  at the top of the notebook that rewrites the later cells scores its points. An
  autograded answer cell (solution and grade both set) fails for the same reason;
- the solution scores less than full marks (a wrong test, a solution whose records
  change from run to run), or the untouched release more than zero (a test that
  passes without the student's work), or the release does not run to the end;
- the solution's graded run takes under MIN_SECONDS (it did not really run) or more
  than its fast budget (the grading limit is 300 s per notebook, and the class waits);
- an attack from the service's attack set (`EXPLOITS` of
  tests/integration/assignment.py, the set the integration tests run against the
  service) scores anything. The attack's code goes into the first answer cell of the
  release; the rest stays untouched. Where the set's code is generic it is used as it
  is (exit early, fork bomb, memory hog, infinite loop, output flood); where it names
  the test lab's cells it is made generic from the solution's reference records:
  `rewrite_cells` rewrites every later cell into code that records, cell by cell,
  every name the solution records there with its count, shape and kind but guessed
  values (zeros, True, empty text), as a cheat who read the tests would;
  `patch_checks` makes every check, `torch.allclose` and friends pass and every
  record a guess of the right shape; `fake_score` prints a full score and shows
  guessed records from the answer cell. A recorded verdict (True) or a constant is
  caught here;
- a personalised notebook (metadata "nncourse": {"personalised": LAB}) gives points to a
  classmate's copy: the solution handed in by another student with the classmate's
  configuration (a first cell makes `lab_config` return it) must score nothing in every test
  cell whose solution records differ between the two students, and some cell besides the
  configuration record itself must differ (each student is graded against the solution run
  with their own identity, as the service does);
- a substitute answer gets points: course/substitutes/<unit>/<notebook stem>.yml
  lists, per "by hand" exercise, an answer that calls the library instead; the
  solution notebook with that one answer cell replaced must score zero on every test
  cell listed, and still run to the end (the guard fails the test, not the run).

The attack rotation (CI) and the full set
-----------------------------------------
The solution, the blank release and the substitutes prove something about each
notebook, so every notebook gets them on every run. The attacks prove two different
things: the notebook-specific ones (`rewrite_cells`, `patch_checks`, `fake_score`)
prove that this notebook's records cannot be forged; the others prove that the
sandbox ends a run that never finishes or dies, whatever the notebook, and three of
them (fork bomb, infinite loop, output flood) cost a whole cell timeout (120 s) each.
So by default each notebook gets ONE attack: in the order of the notebooks proved
that have an answer cell to attack (sorted by unit and name), notebook i < 8 gets
attack i of the set, so that every attack runs on some notebook in every CI run, and
every later notebook gets the notebook-specific attacks in turn. The rotation is a
pure function of the notebook's place (`ci_attacks`): a failure is reproduced by
running the same units again. `--all-attacks` runs the whole set on every notebook
(by hand before a release, or when the attack set or the sandbox changes), and
`--attacks NAME ...` chosen ones; the integration tests
(tests/integration/test_assignments.py) run the whole set against the service too.

`--full` is another check: each source notebook executed at full size (fast mode off)
outside grading, which always runs in fast mode; every cell must run without an error
within the notebook's full budget. Exit status 0 only when every notebook passes; the
table says why one did not, and `--report FILE` writes it all as JSON.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat
import yaml

COURSE = Path(__file__).resolve().parent
REPO = COURSE.parent
SOURCE = COURSE / "source"
GRADING_DEFAULTS = REPO / "ansible/config/defaults.yml"
ATTACK_SET = REPO / "tests/integration/assignment.py"
COURSE_ID = "proof"
MIN_SECONDS = 1.0
FAST_MODE_ENV = "NNCOURSE_FAST_MODE"
RECORD_MIME = "application/vnd.classroom.record+json"
SOLUTION, BLANK, COPIER = "solution", "blank", "copier"

# Attacks whose code in the attack set is generic: used as they are.
VERBATIM_ATTACKS = ("exit_early", "fork_bomb", "memory_hog", "infinite_loop", "output_flood")
# Attacks that forge this notebook's records: given to every notebook in turn.
NOTEBOOK_SPECIFIC_ATTACKS = ("rewrite_cells", "patch_checks", "fake_score")
# Attacks that only the sandbox's process and memory limits contain.
NEED_LIMITS = ("fork_bomb", "memory_hog")


# --- what proving a notebook found ---------------------------------------------------------

@dataclass
class Proof:
    """What proving one notebook found."""

    unit: str
    notebook: str
    attack_index: int | None = None  # its place among the notebooks that have an answer cell to attack
    max_score: float | None = None
    solution_score: float | None = None
    blank_score: float | None = None
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    substitutes: list[dict[str, Any]] = field(default_factory=list)
    copied: dict[str, Any] | None = None  # personalised: a classmate's solution with their configuration
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    autograded: list[str] = field(default_factory=list)
    seconds: float | None = None
    budget: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return self.notebook[:-len(".ipynb")]

    @property
    def key(self) -> str:
        return f"{self.unit}/{self.notebook}"

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Submission:
    """One hand-in to grade: a student's version of some notebooks of one unit."""

    unit: str
    student: str
    notebooks: dict[str, bytes]          # stem -> notebook JSON
    purpose: dict[str, dict[str, Any]]   # stem -> what this submission proves for that notebook


# --- reading the course ---------------------------------------------------------------------

def nbgrader_meta(cell: Any) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_test_cell(cell: Any) -> bool:
    """An autograded test cell, as the grading service decides them."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def first_answer_cell(nb: Any) -> str | None:
    """The grade_id of the notebook's first code answer cell (where attacks go), or None."""
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            return meta.get("grade_id")
    return None


def committed_outputs(nb: Any) -> list[str]:
    """Cells of a notebook that carry outputs or execution counts."""
    return [cell.get("id", str(i)) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def autograded_cells(nb: Any) -> list[str]:
    """The grade_ids of the cells nbgrader grades automatically: code cells with points.
    (A markdown answer with points is graded by hand, and left out of every score here.)"""
    return [nbgrader_meta(c).get("grade_id") for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


def static_problems(nb: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Problems found by reading a source notebook, and its autograded test cells by grade_id."""
    from classroom_grading.records import calls_record

    problems, cells = [], {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id", "")
        if cell.cell_type == "code" and meta.get("grade") and meta.get("solution"):
            problems.append(f"cell {grade_id}: an autograded answer cell is graded on 'no error' alone; make it "
                            "an answer cell followed by a test cell that records the answer's values")
        if not is_test_cell(cell):
            continue
        records = calls_record(cell.source)
        cells[grade_id] = {"points": meta.get("points", 0), "calls_record": records, "records": None}
        if not records:
            problems.append(f"test cell {grade_id} records nothing (no nncourse.record call): it is graded "
                            "'no error = full marks', and a rewrite of the later cells takes its points")
    return problems, cells


def load_budgets(path: Path) -> dict[str, dict]:
    """Budgets per `unit/notebook.ipynb`: fast and full seconds, and whether a GPU is needed."""
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def grading_options() -> dict[str, Any]:
    """The grading service's default limits, from the one place they are defined."""
    grading = yaml.safe_load(GRADING_DEFAULTS.read_text())["grading"]
    return {"memory": str(grading["memory"]), "cpus": float(grading["cpus"]), "pids": int(grading["pids"]),
            "timeout": int(grading["timeout_seconds"]), "cell_timeout": int(grading["cell_timeout_seconds"])}


def load_substitutes(path: Path, nb: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """A notebook's substitute answers (course/substitutes/<unit>/<stem>.yml), and what is wrong with them."""
    if not path.is_file():
        return [], []
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as error:
        return [], [f"{path}: not YAML ({error})"]
    answers = {nbgrader_meta(c).get("grade_id") for c in nb.cells
               if c.cell_type == "code" and nbgrader_meta(c).get("solution")}
    tests = {nbgrader_meta(c).get("grade_id") for c in nb.cells if is_test_cell(c)}
    if not isinstance(entries, list):
        return [], [f"{path}: must be a list of substitutes (exercise, why, tests, source)"]
    good, problems = [], []
    for n, entry in enumerate(entries, 1):
        where = f"{path.name}, substitute {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str) \
                or not isinstance(entry.get("tests"), list) or not entry.get("tests"):
            problems.append(f"{where}: needs exercise, why, tests (a list) and source (the whole answer cell)")
            continue
        if entry.get("exercise") not in answers:
            problems.append(f"{where}: exercise {entry.get('exercise')!r} is not an answer cell's grade_id "
                            f"(answer cells: {', '.join(sorted(answers))})")
            continue
        unknown = [t for t in entry["tests"] if t not in tests]
        if unknown:
            problems.append(f"{where}: {', '.join(map(str, unknown))} not autograded test cells "
                            f"(test cells: {', '.join(sorted(tests))})")
            continue
        good.append({"exercise": entry["exercise"], "why": str(entry.get("why", "")), "tests": list(entry["tests"]),
                     "source": entry["source"]})
    return good, problems


# --- the attack set ----------------------------------------------------------------------

def load_attack_set() -> tuple[dict[str, Callable], str]:
    """The service's attack set (`EXPLOITS`) and the lab's first answer cell, where its attacks go."""
    spec = importlib.util.spec_from_file_location("classroom_attack_set", ATTACK_SET)
    if spec is None or not ATTACK_SET.is_file():
        raise SystemExit(f"prove.py: the attack set {ATTACK_SET} is missing; run the proof from a checkout "
                         "of the whole repository")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    unplaced = [name for name in module.EXPLOITS if name not in VERBATIM_ATTACKS + NOTEBOOK_SPECIFIC_ATTACKS]
    if unplaced:
        raise SystemExit(f"prove.py: the attack set has attack(s) {unplaced} that the proof cannot place in a "
                         "course notebook; add each to VERBATIM_ATTACKS (its first answer cell is generic) or "
                         "give it a generic form beside rewrite_cells in course/prove.py")
    return module.EXPLOITS, module.SOLUTION_IDS[0]


def guessed(record: dict[str, Any]) -> dict[str, Any]:
    """A record of the same name, count, shape and kind with the values a cheat guesses."""
    count = math.prod(record["shape"])
    value = {"float": 0.0, "int": 0, "bool": True, "text": ""}[record["dtype"]]
    return {"name": record["name"], "tol": 1e9, "dtype": record["dtype"], "shape": record["shape"],
            "values": [value] * count}


def forged_by_cell(source_nb: Any, release_nb: Any, reference: dict[str, Any], attack_cell: str) -> dict[str, list]:
    """Guessed records for each code cell that runs after the attack cell, by its order of execution
    (1 = the next code cell that runs; empty cells do not run)."""
    released = {nbgrader_meta(c).get("grade_id"): c.source for c in release_nb.cells}
    forged, order, after = {}, 0, False
    for cell in source_nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code":
            continue
        if meta.get("grade_id") == attack_cell:
            after = True
            continue
        runs = released.get(meta.get("grade_id"), cell.source) if meta.get("solution") else cell.source
        if not after or not runs.strip():
            continue
        order += 1
        if is_test_cell(cell):
            recs = reference.get(meta.get("grade_id"), {})
            forged[str(order)] = [guessed(r) for records in recs.values() for r in records]
    return forged


def rewrite_cells_attack(forged: dict[str, list], max_score: float) -> str:
    """Rewrite every later cell (test cells included) into code that shows guessed records under the
    names the solution records there, before IPython runs it."""
    return f'''
import json
from IPython.display import display

_FORGED = json.loads({json.dumps(json.dumps(forged))})
_STEP = [0]

def _fake_cell(lines):
    return ["_STEP[0] += 1\\n",
            "for _r in _FORGED.get(str(_STEP[0]), []):\\n",
            "    display({{{RECORD_MIME!r}: _r, 'text/plain': 'recorded ' + repr(_r['name'])}}, raw=True)\\n",
            "print('PASS')\\n",
            "'full marks'\\n"]  # a result last: nbgrader would read it as the grade

get_ipython().input_transformers_cleanup.append(_fake_cell)
print("transformer installed")
'''


def patch_checks_attack(forged: dict[str, list], max_score: float) -> str:
    """Make every check and comparison pass and every record a guess of the right shape."""
    return '''
import numpy as np
import torch
import nncourse, nncourse.checks, nncourse.recording

def _ok(*args, **kwargs):
    print("PASS")
    return True

for _module in (nncourse, nncourse.checks):
    for _name in ("check", "check_close", "check_shape", "grad_check", "compare_with_autograd"):
        if hasattr(_module, _name):
            setattr(_module, _name, _ok)
torch.allclose = torch.equal = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
np.allclose = np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None

def _guess(value):
    if isinstance(value, str):
        return ""
    try:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    except Exception:
        return 0.0
    return np.ones(array.shape, dtype=bool) if array.dtype == bool else np.zeros(array.shape, dtype=array.dtype)

_record = nncourse.recording.record

def _guessed_record(name, value, tol=1e-6):
    _record(name, _guess(value), tol=1e9)

nncourse.record = nncourse.recording.record = _guessed_record
'''


def fake_score_attack(forged: dict[str, list], max_score: float) -> str:
    """Print a full score and show every record the solution makes, guessed, from the answer cell."""
    everything = [r for records in forged.values() for r in records]
    return f'''
import json
from IPython.display import display

print("Score: {max_score:g}/{max_score:g}")
print("[AutograderSummary] Total: {max_score:g}/{max_score:g}")
print(json.dumps({{"score": {max_score:g}, "max_score": {max_score:g}}}))
for _r in json.loads({json.dumps(json.dumps(everything))}):
    display({{{RECORD_MIME!r}: _r, "text/plain": "recorded " + repr(_r["name"])}}, raw=True)
'''


GENERIC_FORMS = {"rewrite_cells": rewrite_cells_attack, "patch_checks": patch_checks_attack,
                 "fake_score": fake_score_attack}


def ci_attacks(index: int, names: list[str]) -> list[str]:
    """The one attack that notebook `index` (among those with an answer cell) gets by default: the
    whole set across the first notebooks, then the notebook-specific attacks in turn."""
    if index < len(names):
        return [names[index]]
    specific = [n for n in names if n in NOTEBOOK_SPECIFIC_ATTACKS]
    return [specific[(index - len(names)) % len(specific)]]


# --- the course volume -------------------------------------------------------------------

def quiet_nbgrader_logs() -> io.StringIO:
    """Send nbgrader's and the grading modules' logs to a buffer, kept to explain a failure."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # nbgrader's SQLAlchemy warnings about notebooks left out
    for name in ("traitlets", "NbGrader"):
        logging.getLogger(name).propagate = True
    return buffer


def nbgrader_config(store: Any) -> Any:
    """The formgrader's nbgrader settings for the course volume (images/singleuser/formgrader)."""
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(store.course)
    config.CourseDirectory.course_id = store.course_id
    config.CourseExchange.course_root = str(store.root)
    return config


def generate_and_release(store: Any, unit: str) -> None:
    """What an instructor does in the formgrader: generate the assignment, then release it."""
    from classroom_grading.exchange import CourseReleaseAssignment
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    config = nbgrader_config(store)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = unit
    generator = GenerateAssignment(coursedir=coursedir, config=config)
    generator.force = True
    generator.start()
    release = CourseReleaseAssignment(coursedir=coursedir, config=config)
    release.force = True
    release.start()


def submission_tar(release: Path, notebooks: dict[str, bytes]) -> bytes:
    """A gzipped tar of the assignment folder as a student hands it in: the release's other files
    and the given notebooks (the notebooks left out count as not submitted)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(release.rglob("*")):
            if path.is_file() and path.suffix != ".ipynb":
                archive.add(path, arcname=path.relative_to(release).as_posix(), recursive=False)
        for stem, data in sorted(notebooks.items()):
            info = tarfile.TarInfo(f"{stem}.ipynb")
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def personalised(nb: Any) -> str:
    from classroom_grading.references import personalised as marked

    return marked(nb)


def copied_from_solution(source_nb: Any, options: dict[str, Any]) -> bytes:
    """The solution as a classmate (the student SOLUTION) would hand it over: a first cell makes
    every lab_config call give the classmate's configuration, whoever runs it."""
    from classroom_grading.identity import personal_key

    key = personal_key(options["identity_secret"], options["term"], SOLUTION)
    nb = nbformat.from_dict(json.loads(json.dumps(source_nb)))
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import nncourse.personal as _personal\n"
        "_theirs = _personal.Identity(%r, %r, 'hub')\n"
        "_lab_config = _personal.lab_config\n"
        "_personal.lab_config = lambda lab, space=None, who=None: _lab_config(lab, space, who=_theirs)"
        % (SOLUTION, key)))
    return nbformat.writes(nb).encode()


# --- in the worker processes ---------------------------------------------------------------

def prepare_worker(executor: str, path: str) -> None:
    """Start a worker: the local executor replaces the sandbox container by the same harness as a
    subprocess (for this process only), and logs go to a buffer per submission."""
    os.environ["PATH"] = path
    if executor == "local":
        from classroom_grading import sandbox

        def run_without_container(image, payload, notebook_name, limits, labels=None, client=None, spare=True,
                                  identity=""):
            return sandbox.run_local(payload, notebook_name, limits, identity)

        sandbox.run = run_without_container


def grade_submission(root: str, unit: str, student: str, tar: bytes, stems: list[str],
                     options: dict[str, Any]) -> dict[str, Any]:
    """Hand a submission in and grade it as the service does; return the autograded cells' scores
    from the gradebook, and what the sandbox reported for each notebook."""
    from classroom_grading import worker
    from classroom_grading.gradebook import gradebook_url
    from classroom_grading.store import Store
    from nbgrader.api import Gradebook

    import resource

    log = quiet_nbgrader_logs()
    began, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    store = Store(Path(root), COURSE_ID)
    try:
        stamp = store.receive(student, unit, tar)
        graded = worker.grade(root, COURSE_ID, student, unit, stamp, options)
        cells = {}
        with Gradebook(gradebook_url(store.course), COURSE_ID) as gradebook:
            for stem in stems:
                notebook = gradebook.find_submission_notebook(stem, unit, student)
                cells[stem] = {g.name: [g.auto_score, g.max_score] for g in notebook.grades
                               if g.auto_score is not None}
        runs = {run["notebook"]: run for run in graded["sandbox"]}
        spent = resource.getrusage(resource.RUSAGE_SELF)
        grader_cpu = spent.ru_utime + spent.ru_stime - cpu.ru_utime - cpu.ru_stime
        return {"cells": cells, "runs": runs, "seconds": time.monotonic() - began, "grader_cpu": grader_cpu,
                "error": None}
    except Exception as error:  # noqa: BLE001 - reported on the notebooks of this submission
        return {"cells": {}, "runs": {}, "seconds": time.monotonic() - began,
                "error": f"{type(error).__name__}: {error}",
                "log": log.getvalue()[-3000:] + traceback.format_exc()[-2000:]}


# --- the proof ------------------------------------------------------------------------------

class Prover:
    """Grades the course's notebooks through the grading service and judges what came back."""

    def __init__(self, args: argparse.Namespace, units: list[Path]):
        from classroom_grading.store import Store

        self.args = args
        self.units = units
        self.store = Store(args.workdir, COURSE_ID)
        # Every submission runs with its student's identity, as in the service: a personalised
        # notebook's solution runs once per student, with that student's configuration.
        self.options = {**grading_options(), "image": args.image or "", "deployment": args.deployment,
                        "identity_secret": uuid.uuid4().hex, "term": "proof"}
        self.budgets = load_budgets(args.source.parent / "budgets.yml")
        self.exploits, self.lab_first_cell = load_attack_set()
        self.attack_names = list(self.exploits)
        self.proofs: list[Proof] = []
        self.sources: dict[str, Any] = {}        # unit/notebook -> source notebook
        self.substitutes: dict[str, list] = {}   # unit/notebook -> substitutes
        self.ready_units: list[str] = []
        self.graded: list[dict[str, Any]] = []   # each submission graded: what, how long

    # static checks and the course volume
    def prepare(self) -> None:
        """Read every notebook, check what needs no run, and generate and release every unit."""
        self.store.ensure()
        attackable = 0
        for unit in self.units:
            unit_proofs = []
            for path in sorted(unit.glob("*.ipynb")):
                key = f"{unit.name}/{path.name}"
                budget = self.budgets.get(key, {}).get("fast")
                proof = Proof(unit.name, path.name, budget=budget)
                nb = nbformat.read(path, as_version=4)
                self.sources[key] = nb
                proof.autograded = autograded_cells(nb)
                if first_answer_cell(nb) is not None:
                    proof.attack_index, attackable = attackable, attackable + 1
                if outputs := committed_outputs(nb):
                    proof.problems.append(f"committed outputs in cells {', '.join(outputs[:5])}: clear them "
                                          "(Kernel > Restart and Clear Outputs) before committing")
                if budget is None:
                    proof.problems.append(f"no fast budget for {key} in course/budgets.yml")
                problems, proof.cells = static_problems(nb)
                proof.problems += problems
                substitutes, bad = load_substitutes(self.args.substitutes / unit.name / f"{path.stem}.yml", nb)
                self.substitutes[key] = substitutes
                proof.problems += bad
                unit_proofs.append(proof)
            self.proofs += unit_proofs
            shutil.copytree(unit, self.store.course / "source" / unit.name)
            try:
                generate_and_release(self.store, unit.name)
            except Exception as error:  # noqa: BLE001 - the unit's notebooks fail with the reason
                for proof in unit_proofs:
                    proof.problems.append(f"nbgrader could not generate or release {unit.name}: {error}")
                continue
            self.ready_units.append(unit.name)

    def proofs_of(self, unit: str) -> list[Proof]:
        return [p for p in self.proofs if p.unit == unit]

    def released(self, unit: str, stem: str) -> Any:
        return nbformat.read(self.store.exchange / "outbound" / unit / f"{stem}.ipynb", as_version=4)

    def reference(self, unit: str, stem: str, student: str = SOLUTION) -> dict[str, Any]:
        from classroom_grading.references import reference_file

        path = reference_file(self.store.state / "reference", unit, stem, student)
        return json.loads(path.read_text()) if path.is_file() else {}

    # what to hand in
    def solution_submission(self, unit: str) -> Submission:
        notebooks = {p.stem: (self.store.course / "source" / unit / p.notebook).read_bytes()
                     for p in self.proofs_of(unit)}
        return Submission(unit, SOLUTION, notebooks, {stem: {"kind": SOLUTION} for stem in notebooks})

    def attacks_for(self, proof: Proof) -> list[str]:
        if proof.attack_index is None:
            return []
        if self.args.all_attacks:
            return list(self.attack_names)
        if self.args.attacks:
            return list(self.args.attacks)
        return ci_attacks(proof.attack_index, self.attack_names)

    def attack_source(self, name: str, proof: Proof, attack_cell: str) -> str:
        if name in VERBATIM_ATTACKS:
            return self.exploits[name]()[self.lab_first_cell].strip("\n")
        source_nb = self.sources[proof.key]
        forged = forged_by_cell(source_nb, self.released(proof.unit, proof.stem),
                                self.reference(proof.unit, proof.stem), attack_cell)
        return GENERIC_FORMS[name](forged, proof.max_score or 0).strip("\n")

    def follow_ups(self, unit: str) -> list[Submission]:
        """Everything handed in for a unit once its solution is graded (its reference records exist)."""
        proofs = [p for p in self.proofs_of(unit) if p.max_score is not None]
        release = self.store.exchange / "outbound" / unit
        found = [Submission(unit, BLANK, {p.stem: (release / p.notebook).read_bytes() for p in proofs},
                            {p.stem: {"kind": BLANK} for p in proofs})]
        attacks: dict[str, Submission] = {}
        substitutes: dict[int, Submission] = {}
        for proof in proofs:
            released = self.released(unit, proof.stem)
            attack_cell = first_answer_cell(released)
            if attack_cell is None:
                proof.notes.append("no attack: the notebook has no answer cell")
            for name in self.attacks_for(proof):
                if self.args.executor == "local" and name in NEED_LIMITS:
                    proof.notes.append(f"attack {name} not run: the local executor has no process or memory "
                                       "limits (run --executor docker)")
                    continue
                nb = nbformat.from_dict(json.loads(json.dumps(released)))
                for cell in nb.cells:
                    if nbgrader_meta(cell).get("grade_id") == attack_cell:
                        cell.source = self.attack_source(name, proof, attack_cell)
                entry = attacks.setdefault(name, Submission(unit, f"attack-{name}", {}, {}))
                entry.notebooks[proof.stem] = nbformat.writes(nb).encode()
                entry.purpose[proof.stem] = {"kind": "attack", "attack": name}
            for n, substitute in enumerate(self.substitutes[proof.key], 1):
                nb = nbformat.from_dict(json.loads(json.dumps(self.sources[proof.key])))
                for cell in nb.cells:
                    if nbgrader_meta(cell).get("grade_id") == substitute["exercise"]:
                        cell.source = substitute["source"]
                entry = substitutes.setdefault(n, Submission(unit, f"substitute-{n}", {}, {}))
                entry.notebooks[proof.stem] = nbformat.writes(nb).encode()
                entry.purpose[proof.stem] = {"kind": "substitute", "substitute": substitute}
        copied = Submission(unit, COPIER, {}, {})
        for proof in proofs:
            if personalised(self.sources[proof.key]):
                copied.notebooks[proof.stem] = copied_from_solution(self.sources[proof.key], self.options)
                copied.purpose[proof.stem] = {"kind": "copied"}
        return found + list(attacks.values()) + list(substitutes.values()) + ([copied] if copied.notebooks else [])

    # grading
    def run(self) -> None:
        """Grade every unit's solution, then everything else of that unit, `workers` at a time."""
        path = os.environ["PATH"]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.args.workers, mp_context=context, initializer=prepare_worker,
                                 initargs=(self.args.executor, path)) as pool:
            pending: dict[Future, Submission] = {}

            def submit(submission: Submission) -> None:
                tar = submission_tar(self.store.exchange / "outbound" / submission.unit, submission.notebooks)
                pending[pool.submit(grade_submission, str(self.store.root), submission.unit, submission.student,
                                    tar, sorted(submission.notebooks), self.options)] = submission

            try:
                for unit in self.ready_units:
                    submit(self.solution_submission(unit))
                while pending:
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for future in done:
                        submission = pending.pop(future)
                        try:
                            outcome = future.result()
                        except Exception as error:  # noqa: BLE001 - a worker process died
                            outcome = {"cells": {}, "runs": {}, "seconds": 0.0, "log": "",
                                       "error": f"the grading worker died: {type(error).__name__}: {error}"}
                        self.judge(submission, outcome)
                        if submission.student == SOLUTION and outcome["error"] is None:
                            for follow_up in self.follow_ups(submission.unit):
                                submit(follow_up)
            except BaseException:  # interrupted: grade nothing more that is queued
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    # judging
    def judge(self, submission: Submission, outcome: dict[str, Any]) -> None:
        """Turn one graded submission into each of its notebooks' findings."""
        self.graded.append({"unit": submission.unit, "student": submission.student,
                            "notebooks": sorted(submission.notebooks), "seconds": round(outcome["seconds"], 1),
                            "grader_cpu_seconds": round(outcome.get("grader_cpu", 0.0), 1),
                            "sandbox_seconds": {stem: run.get("seconds") for stem, run in outcome["runs"].items()},
                            "error": outcome["error"]})
        for proof in self.proofs_of(submission.unit):
            purpose = submission.purpose.get(proof.stem)
            if purpose is None:
                continue
            kind = purpose["kind"]
            if outcome["error"] is not None:
                what = {"solution": "the solution", "blank": "the untouched release"}.get(
                    kind, f"{kind} {purpose.get('attack') or purpose.get('substitute', {}).get('exercise')}")
                proof.problems.append(f"grading {what} failed: {outcome['error']}")
                if self.args.verbose:
                    proof.notes.append(outcome.get("log", ""))
                continue
            cells = {grade_id: scores for grade_id, scores in outcome["cells"].get(proof.stem, {}).items()
                     if grade_id in proof.autograded}
            run = outcome["runs"].get(proof.stem, {})
            score = sum(s for s, _ in cells.values())
            max_score = sum(m for _, m in cells.values())
            given = sorted(grade_id for grade_id, (s, _) in cells.items() if s)
            if kind == SOLUTION:
                self.judge_solution(proof, cells, run, score, max_score)
            elif kind == BLANK:
                proof.blank_score = score
                if score:
                    proof.problems.append(f"the untouched release scores {score:g}/{max_score:g}, not zero "
                                          f"({', '.join(given)}): a test passes without the student's work")
                if run.get("status") != "completed":
                    proof.problems.append(f"the untouched release does not run to the end in the sandbox "
                                          f"({run.get('status')} {run.get('detail', '')}): it must not hang or "
                                          "crash the kernel")
            elif kind == "attack":
                name = purpose["attack"]
                proof.attacks[name] = {"score": score, "cells_with_points": given, "status": run.get("status"),
                                       "seconds": run.get("seconds")}
                if score:
                    proof.problems.append(f"attack {name} scores {score:g}/{max_score:g} "
                                          f"({', '.join(given)}): record values those cells cannot forge")
            elif kind == "copied":
                self.judge_copied(proof, cells, score, max_score)
            else:
                self.judge_substitute(proof, purpose["substitute"], cells, run)

    def judge_solution(self, proof: Proof, cells: dict, run: dict, score: float, max_score: float) -> None:
        proof.max_score, proof.solution_score = max_score, score
        proof.seconds = run.get("seconds")
        if score < max_score:
            lost = sorted(g for g, (s, m) in cells.items() if s < m)
            proof.problems.append(f"the solution scores {score:g}/{max_score:g}, not full marks ({', '.join(lost)}): "
                                  "a test or a solution is wrong, or a record changes from run to run")
        if run.get("status") != "completed":
            proof.problems.append(f"the solution does not run to the end in the sandbox ({run.get('status')} "
                                  f"{run.get('detail', '')})")
        seconds = proof.seconds
        if seconds is not None and seconds < MIN_SECONDS:
            proof.problems.append(f"the solution ran in {seconds:.2f} s: it did not really run")
        if seconds is not None and proof.budget is not None and seconds > proof.budget:
            proof.problems.append(f"the solution took {seconds:.0f} s, over its fast budget of {proof.budget} s")
        reference = self.reference(proof.unit, proof.stem)
        for grade_id, cell in proof.cells.items():
            names = reference.get(grade_id, {})
            cell["records"] = {name: len(recs) for name, recs in names.items()}
            if not names and cell["calls_record"]:
                proof.problems.append(f"test cell {grade_id} records nothing when the solution runs: its "
                                      "record calls never run")

    def judge_copied(self, proof: Proof, cells: dict, score: float, max_score: float) -> None:
        """A classmate's solution, run with the classmate's configuration: every test cell whose
        solution records depend on the configuration must score nothing, and there must be such
        cells beyond the configuration record itself (else the lab is not personalised)."""
        mine, theirs = self.reference(proof.unit, proof.stem, COPIER), self.reference(proof.unit, proof.stem)
        dependent = sorted(g for g in theirs if not g.startswith("_") and mine.get(g) != theirs.get(g))
        beyond = [g for g in dependent
                  if {n for n in theirs[g] if mine.get(g, {}).get(n) != theirs[g][n]} - {"configuration"}]
        given = sorted(g for g in dependent if cells.get(g, [0, 0])[0])
        proof.copied = {"score": score, "dependent_cells": dependent, "dependent_cells_with_points": given}
        if given:
            proof.problems.append(f"a classmate's solution, with the classmate's configuration, scores in "
                                  f"{', '.join(given)}: those cells must record values that depend on the "
                                  "configuration")
        if not beyond:
            proof.problems.append("personalised, but no test cell records a value that depends on the student's "
                                  "configuration besides the configuration itself")

    def judge_substitute(self, proof: Proof, substitute: dict, cells: dict, run: dict) -> None:
        given = sorted(t for t in substitute["tests"] if cells.get(t, [0, 0])[0])
        others_lost = sorted(g for g, (s, m) in cells.items() if s < m and g not in substitute["tests"])
        proof.substitutes.append({"exercise": substitute["exercise"], "why": substitute["why"],
                                  "tests": substitute["tests"], "given": given,
                                  "points": sum(cells.get(t, [0, 0])[0] for t in substitute["tests"]),
                                  "status": run.get("status"), "other_cells_failed": others_lost})
        if given:
            proof.problems.append(f"substitute for {substitute['exercise']} ({substitute['why']}) gets points "
                                  f"from {', '.join(given)}: run the student's code under nncourse.forbid(...)")
        if run.get("status") != "completed":
            proof.problems.append(f"substitute for {substitute['exercise']} stops the notebook "
                                  f"({run.get('status')} {run.get('detail', '')}): a guard must fail the test, "
                                  "not the run")

    def finish(self) -> None:
        """Findings that need every run: what never ran."""
        for proof in self.proofs:
            if proof.unit in self.ready_units and proof.max_score is None and not any(
                    p.startswith("grading the solution failed") for p in proof.problems):
                proof.problems.append("not graded: the unit's solution could not be graded (see its other notebooks)")


# --- full size ---------------------------------------------------------------------------

def prove_full(units: list[Path], workdir: Path, budgets: dict[str, dict]) -> list[Proof]:
    """Execute each source notebook at full size, outside grading; every cell must run without error."""
    from nbclient import NotebookClient

    os.environ[FAST_MODE_ENV] = "0"
    proofs = []
    for unit in units:
        copy = workdir / unit.name
        shutil.copytree(unit, copy)
        for path in sorted(copy.glob("*.ipynb")):
            key = f"{unit.name}/{path.name}"
            proof = Proof(unit.name, path.name, budget=budgets.get(key, {}).get("full"))
            proofs.append(proof)
            if proof.budget is None:
                proof.problems.append(f"no full budget for {key} in course/budgets.yml")
            nb = nbformat.read(path, as_version=4)
            began = time.monotonic()
            NotebookClient(nb, timeout=3600, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(copy)}}).execute()
            proof.seconds = round(time.monotonic() - began, 1)
            for cell in nb.cells:
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                if errors:
                    grade_id = nbgrader_meta(cell).get("grade_id", cell.get("id"))
                    proof.problems.append(f"cell {grade_id} fails at full size: {errors[0].get('ename')}: "
                                          f"{errors[0].get('evalue', '')[:300]}")
            if proof.seconds < MIN_SECONDS:
                proof.problems.append(f"ran in {proof.seconds:.2f} s: it did not really run")
            if proof.budget is not None and proof.seconds > proof.budget:
                proof.problems.append(f"took {proof.seconds:.0f} s, over its full budget of {proof.budget} s")
    return proofs


# --- the table -------------------------------------------------------------------------------

def attack_column(proof: Proof) -> str:
    """Each attack's score; for a personalised notebook, then what a classmate's copy scored in the
    cells that depend on the configuration (c0: nothing)."""
    column = "/".join(f"{a['score']:g}" for a in proof.attacks.values()) + f" of {len(proof.attacks)}" \
        if proof.attacks else "-"
    if proof.copied is not None:
        column += f" c{len(proof.copied['dependent_cells_with_points'])}"
    return column


def print_table(proofs: list[Proof], full: bool, verbose: bool, out=sys.stdout) -> None:
    if full:
        print(f"\n{'notebook':<56} {'full size':>10} {'budget':>7}  verdict", file=out)
    else:
        print(f"\n{'notebook':<56} {'solution':>9} {'blank':>5} {'attacks':>10} {'substitutes':>11} "
              f"{'time':>8} {'budget':>6}  verdict", file=out)
    for p in proofs:
        seconds = f"{p.seconds:.1f} s" if p.seconds is not None else "-"
        budget = f"{p.budget:g}" if p.budget is not None else "-"
        verdict = "ok" if p.ok else "FAIL"
        if full:
            print(f"{p.key:<56} {seconds:>10} {budget:>7}  {verdict}", file=out)
        else:
            solution = f"{p.solution_score:g}/{p.max_score:g}" if p.solution_score is not None else "-"
            blank = f"{p.blank_score:g}" if p.blank_score is not None else "-"
            subs = (f"{sum(1 for s in p.substitutes if s['given'])} of {len(p.substitutes)}"
                    if p.substitutes else "-")
            print(f"{p.key:<56} {solution:>9} {blank:>5} {attack_column(p):>10} {subs:>11} {seconds:>8} "
                  f"{budget:>6}  {verdict}", file=out)
        for problem in p.problems:
            print(f"    - {problem}", file=out)
        for note in p.notes if verbose or not p.ok else []:
            print(f"    . {note}", file=out)
        if (verbose or not p.ok) and p.cells and not full:
            for grade_id, cell in p.cells.items():
                records = cell["records"]
                names = ("not run" if records is None else
                         ", ".join(f"{n!r}" + (f" x{k}" if k > 1 else "") for n, k in records.items()) or "NOTHING")
                print(f"    . {grade_id} ({cell['points']:g} pt): records {names}", file=out)


# --- the command line ----------------------------------------------------------------------

def default_workers() -> int:
    """One grading worker per core, as the service runs."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", nargs="*", help="unit folder names under the source folder (default: all)")
    parser.add_argument("--source", type=Path, default=SOURCE,
                        help="folder of unit folders to prove (default: course/source); its budgets.yml and "
                             "substitutes/<unit>/<stem>.yml are the ones beside it")
    parser.add_argument("--executor", choices=("local", "docker"), default="local",
                        help="docker: a sandbox container per notebook from --image (as the service); "
                             "local: the same harness as a subprocess, no isolation (default)")
    parser.add_argument("--image", help="the CPU image the sandboxes run from (with --executor docker)")
    parser.add_argument("--deployment", default=f"course-proof-{uuid.uuid4().hex[:8]}",
                        help="the org.classroom.deployment label of the proof's sandboxes, removed at the end "
                             "(default: a new course-proof-* name, which no deployment removes)")
    attacks = parser.add_mutually_exclusive_group()
    attacks.add_argument("--all-attacks", action="store_true",
                         help="run the whole attack set on every notebook (default: one each, in rotation)")
    attacks.add_argument("--attacks", nargs="+", metavar="NAME", help="run these attacks on every notebook")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="submissions graded at once (default: one per core)")
    parser.add_argument("--full", action="store_true",
                        help="instead: execute each source notebook at full size against its full budget")
    parser.add_argument("--workdir", type=Path, help="the course volume to use, kept (default: a temporary one)")
    parser.add_argument("--report", type=Path, help="also write the results as JSON here")
    parser.add_argument("--verbose", action="store_true", help="show every notebook's cells and notes")
    args = parser.parse_args(argv)
    if args.executor == "docker" and not args.image and not args.full:
        parser.error("--executor docker needs --image (the CPU image, e.g. classroom/cpu:TAG)")
    args.source = args.source.resolve()
    args.substitutes = args.source.parent / "substitutes"
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    began = time.monotonic()
    units = sorted(p for p in args.source.iterdir()
                   if p.is_dir() and any(p.glob("*.ipynb")) and (not args.units or p.name in args.units))
    if not units:
        print(f"no units found under {args.source} matching {args.units}", file=sys.stderr)
        return 2
    # nbgrader runs `alembic` as a command to create its gradebook: this Python's bin folder first.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    keep = args.workdir is not None
    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="prove-"))).resolve()
    if keep and args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)

    removed = 0
    try:
        graded: list[dict[str, Any]] = []
        if args.full:
            proofs = prove_full(units, args.workdir, load_budgets(args.source.parent / "budgets.yml"))
        else:
            prover = Prover(args, units)
            if args.attacks:
                unknown = set(args.attacks) - set(prover.attack_names)
                if unknown:
                    print(f"unknown attack(s) {sorted(unknown)}; the set is {prover.attack_names}", file=sys.stderr)
                    return 2
            quiet_nbgrader_logs()
            prover.prepare()
            prover.run()
            prover.finish()
            proofs, graded = prover.proofs, prover.graded
    finally:
        if args.executor == "docker" and not args.full:
            from classroom_grading import sandbox
            removed = sandbox.remove_all(args.deployment)
        if not keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    seconds = time.monotonic() - began

    print_table(proofs, args.full, args.verbose)
    failed = [p for p in proofs if not p.ok]
    what = "full size" if args.full else f"{args.executor} executor, {args.workers} worker(s)"
    print(f"\n{len(proofs) - len(failed)} passed, {len(failed)} failed; {len(proofs)} notebooks in {seconds:.0f} s "
          f"({what}){f'; removed {removed} spare sandbox(es)' if removed else ''}")
    if args.report:
        report = {"executor": "full" if args.full else args.executor, "workers": args.workers,
                  "seconds": round(seconds, 1), "limits": None if args.full else grading_options(),
                  "notebooks": [{**asdict(p), "ok": p.ok} for p in proofs], "submissions": graded}
        args.report.write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
