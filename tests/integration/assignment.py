"""A small nbgrader assignment for the grading tests, and the submissions students make.

`source_notebook()` is the instructor's source of "lab.ipynb" in the assignment
"lab-small": implement `relu`, a row-wise `softmax` and `mse` in PyTorch. Its three
autograded test cells (1, 2 and 2 points) record the student's outputs on fixed
inputs with `nncourse.record`, plus more on other inputs in hidden test regions;
they never compute the expected values themselves: the grading service compares
the records with those of the solution, outside the sandbox.

A submission is described by its answer cells, a dict grade_id -> cell source, and
turned into the notebook a student hands in by `student_notebook(answers)`:

- `correct_answers()`: full marks (5/5);
- `partial_answers()`: relu and mse right, softmax without row normalisation (3/5);
- `blank_answers()` (also `blank`): the release untouched (0/5);
- `EXPLOITS[name]()`: an attack on the grader from the first answer cell, before any
  test cell runs; every test must fail (0/5).

Plain module (no tests here); it needs only nbformat.
"""
from __future__ import annotations

import copy
import io
import re
import tarfile
from typing import Callable

import nbformat
from nbformat import NotebookNode

ASSIGNMENT = "lab-small"
NOTEBOOK = "lab"

SOLUTION_IDS = ("relu", "softmax", "mse")
POINTS = {"test-relu": 1, "test-softmax": 2, "test-mse": 2}
TEST_IDS = tuple(POINTS)
TOTAL_POINTS = sum(POINTS.values())

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
           points: int | None = None) -> dict:
    nbgrader = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id,
                "schema_version": 3}
    if points is not None:
        nbgrader["points"] = points
    return {"nbgrader": nbgrader}


def _markdown(grade_id: str, text: str) -> NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"), metadata=_meta(grade_id, locked=True))


def _code(grade_id: str, source: str, **kind) -> NotebookNode:
    return nbformat.v4.new_code_cell(source.strip("\n"), metadata=_meta(grade_id, **kind))


# --- the instructor's source -------------------------------------------------------

_SETUP = """
import torch
import nncourse

torch.set_printoptions(precision=4)
"""

_RELU_SOLUTION = '''
def relu(x):
    """The rectified linear unit max(x, 0), elementwise; returns a new tensor of x's shape."""
    ### BEGIN SOLUTION
    return torch.clamp(x, min=0.0)
    ### END SOLUTION
'''

_SOFTMAX_SOLUTION = '''
def softmax(x):
    """Softmax of each row of the 2-D tensor x: exp(x) normalised so that every row sums to 1.

    Subtract each row's maximum first, so that large inputs do not overflow.
    """
    ### BEGIN SOLUTION
    shifted = x - x.max(dim=1, keepdim=True).values
    e = torch.exp(shifted)
    return e / e.sum(dim=1, keepdim=True)
    ### END SOLUTION
'''

_MSE_SOLUTION = '''
def mse(pred, target):
    """The mean squared error between pred and target (same shape), as a 0-dim tensor."""
    ### BEGIN SOLUTION
    return ((pred - target) ** 2).mean()
    ### END SOLUTION
'''

_TEST_RELU = """
x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 3.0]])
out = relu(x)
assert out.shape == x.shape, f"relu must keep the shape {tuple(x.shape)}, not {tuple(out.shape)}"
nncourse.record("relu of fixed values", out, tol=1e-6)
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(101)
x = torch.randn(4, 7, generator=g)
nncourse.record("relu of random 4x7", relu(x), tol=1e-6)
nncourse.record("relu leaves its input unchanged", x, tol=0.0)
### END HIDDEN TESTS
"""

_TEST_SOFTMAX = """
x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
out = softmax(x)
assert out.shape == x.shape, f"softmax must keep the shape {tuple(x.shape)}, not {tuple(out.shape)}"
nncourse.record("softmax of fixed rows", out, tol=1e-5)
nncourse.check("softmax rows sum to 1", torch.allclose(out.sum(dim=1), torch.ones(2), atol=1e-5),
               "divide each row by its own sum")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(202)
x = torch.randn(5, 4, generator=g) * 3
nncourse.record("softmax of random 5x4", softmax(x), tol=1e-5)
nncourse.record("softmax of large values", softmax(torch.tensor([[1000.0, 1001.0, 1002.0]])), tol=1e-5)
### END HIDDEN TESTS
"""

_TEST_MSE = """
pred = torch.tensor([1.0, 2.0, 3.0])
target = torch.tensor([1.5, 2.0, 1.0])
out = mse(pred, target)
assert out.dim() == 0, f"mse must return a single number (a 0-dim tensor), not shape {tuple(out.shape)}"
nncourse.record("mse of fixed vectors", out, tol=1e-6)
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(303)
pred, target = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
nncourse.record("mse of random 6x3", mse(pred, target), tol=1e-5)
nncourse.record("mse of equal tensors", mse(target, target.clone()), tol=1e-6)
### END HIDDEN TESTS
"""


def source_notebook() -> NotebookNode:
    """The instructor's source of lab.ipynb: solutions and hidden tests included."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells = [
        _markdown("intro", """
# Lab: activations and a loss

Implement three small functions with PyTorch: `relu`, a row-wise `softmax`, and the
mean squared error `mse`. Each is followed by a test cell; the hidden tests check more
inputs than the ones you see. Do not change the test cells.
"""),
        _code("setup", _SETUP, locked=True),
        _markdown("intro-relu", "## 1. ReLU (1 point)\n\n`relu(x)` returns `max(x, 0)` elementwise."),
        _code("relu", _RELU_SOLUTION, solution=True),
        _code("test-relu", _TEST_RELU, grade=True, locked=True, points=POINTS["test-relu"]),
        _markdown("intro-softmax", "## 2. Softmax (2 points)\n\nThe softmax of each row of a 2-D tensor."),
        _code("softmax", _SOFTMAX_SOLUTION, solution=True),
        _code("test-softmax", _TEST_SOFTMAX, grade=True, locked=True, points=POINTS["test-softmax"]),
        _markdown("intro-mse", "## 3. Mean squared error (2 points)\n\n`mse(pred, target)` is a single number."),
        _code("mse", _MSE_SOLUTION, solution=True),
        _code("test-mse", _TEST_MSE, grade=True, locked=True, points=POINTS["test-mse"]),
    ]
    nbformat.validate(nb)
    return nb


# --- the release, as nbgrader's generate_assignment makes it -----------------------

def _replace_regions(source: str, begin: str, end: str, stub: str | None) -> str:
    """Drop each begin/end region; with a stub, put it in the region's place at its indentation."""
    out, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            if stub is not None:
                indent = re.match(r"\s*", line).group(0)
                out.extend(indent + part for part in stub.split("\n"))
            inside = True
        elif end in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _clear_solution(source: str) -> str:
    return _replace_regions(source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)


def _clear_hidden_tests(source: str) -> str:
    return _replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, None)


def _solution_sources() -> dict[str, str]:
    return {cell.metadata.nbgrader.grade_id: cell.source for cell in source_notebook().cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def student_notebook(answers: dict[str, str]) -> NotebookNode:
    """The release of lab.ipynb with the answer cells' sources replaced by `answers`.

    Hidden tests are removed and unanswered solution cells hold nbgrader's stub, as in
    what a student downloads; the notebook is unexecuted (no outputs)."""
    unknown = set(answers) - set(SOLUTION_IDS)
    if unknown:
        raise KeyError(f"not answer cells of {NOTEBOOK}.ipynb: {sorted(unknown)}")
    nb = copy.deepcopy(source_notebook())
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers.get(meta["grade_id"], _clear_solution(cell.source))
        elif meta.get("grade") and cell.cell_type == "code":
            cell.source = _clear_hidden_tests(cell.source)
    nbformat.validate(nb)
    return nb


def graded_notebook(answers: dict[str, str]) -> NotebookNode:
    """What nbgrader's autograde executes for a submission of `answers`: the student's
    notebook with its locked and test cells restored from the source (hidden tests
    included), as nbgrader's OverwriteCells does from the gradebook."""
    nb = student_notebook(answers)
    source = {cell.metadata.nbgrader.grade_id: cell for cell in source_notebook().cells}
    for cell in nb.cells:
        meta = cell.metadata.nbgrader
        if not meta.get("solution") and (meta.get("grade") or meta.get("locked")):
            cell.source = source[meta.grade_id].source
    return nb


def release_notebook() -> NotebookNode:
    """What students download: the release, untouched."""
    return student_notebook({})


# --- honest submissions ---------------------------------------------------------------

def correct_answers() -> dict[str, str]:
    """Right answers written differently from the solution: 5/5."""
    return {
        "relu": "def relu(x):\n    return torch.where(x > 0, x, torch.zeros_like(x))",
        "softmax": "def softmax(x):\n    return torch.softmax(x, dim=1)",
        "mse": "def mse(pred, target):\n    return torch.nn.functional.mse_loss(pred, target)",
    }


def partial_answers() -> dict[str, str]:
    """relu and mse right; softmax forgets to normalise the rows: 3/5 (test-softmax fails)."""
    answers = correct_answers()
    answers["softmax"] = "def softmax(x):\n    return torch.exp(x - x.max(dim=1, keepdim=True).values)"
    return answers


def blank_answers() -> dict[str, str]:
    """Every answer cell as released (the nbgrader stub): 0/5."""
    return {grade_id: _clear_solution(source) for grade_id, source in _solution_sources().items()}


blank = blank_answers

EXPECTED_SCORES = {"correct": 5, "partial": 3, "blank": 0}
FAILING_TESTS = {"correct": (), "partial": ("test-softmax",), "blank": TEST_IDS}

# --- attacks on the grader: every one must score 0/5 --------------------------------

_WRONG = {
    "relu": "def relu(x):\n    return torch.zeros_like(x)",
    "softmax": "def softmax(x):\n    return torch.full_like(x, 1.0 / x.shape[1])",
    "mse": "def mse(pred, target):\n    return torch.tensor(0.0)",
}


def _attack(first_cell: str, rest: dict[str, str] | None = None) -> dict[str, str]:
    answers = dict(_WRONG if rest is None else rest)
    answers["relu"] = first_cell.strip("\n")
    return answers


def exploit_rewrite_cells() -> dict[str, str]:
    """Rewrite every later cell (the test cells included) before IPython runs it, each ending in
    an expression whose result nbgrader would take as the cell's grade."""
    return _attack('''
import torch, nncourse

def relu(x):
    return x

_FAKE = [
    "print('PASS')\\n",
    "import nncourse, torch\\n",
    "nncourse.record('relu of fixed values', torch.zeros(1, 5))\\n",
    "nncourse.record('softmax of fixed rows', torch.zeros(2, 3))\\n",
    "nncourse.record('mse of fixed vectors', torch.tensor(0.0))\\n",
    # An expression last: nbgrader reads a cell's first execute_result as its grade ("full
    # marks" is not a number, so full credit) unless the verdict's error comes before it.
    "'full marks'\\n",
]

def _rewrite(lines):
    return list(_FAKE)

get_ipython().input_transformers_cleanup.append(_rewrite)
print("transformer installed")
''', rest={})


def exploit_patch_checks() -> dict[str, str]:
    """Make every check pass and every record a constant."""
    return _attack('''
import builtins
import torch, nncourse, nncourse.checks, nncourse.recording

def _ok(*args, **kwargs):
    print("PASS")

for _module in (nncourse, nncourse.checks):
    _module.check = _module.check_close = _module.check_shape = _module.grad_check = _ok
torch.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
_record = nncourse.recording.record
nncourse.record = nncourse.recording.record = lambda name, value, tol=1e-6: _record(name, 0.0, tol=1e9)

def relu(x):
    return torch.zeros_like(x)
''')


def exploit_exit_early() -> dict[str, str]:
    """End the kernel at once, hoping that no test run means no failure."""
    return _attack("import os\nos._exit(0)")


def exploit_fake_score() -> dict[str, str]:
    """Print an nbgrader-looking score and show fake records from an answer cell."""
    return _attack('''
import json
from IPython.display import display

def relu(x):
    return x * 0

print("Score: 5/5")
print("[AutograderSummary] test-relu: 1/1  test-softmax: 2/2  test-mse: 2/2  Total: 5/5")
print(json.dumps({"score": 5.0, "max_score": 5.0, "grade_id": "test-relu"}))
for _name, _shape, _values in [("relu of fixed values", [1, 5], [0.0, 0.0, 0.0, 0.5, 3.0]),
                               ("softmax of fixed rows", [2, 3], [0.1, 0.2, 0.7, 0.3, 0.3, 0.4]),
                               ("mse of fixed vectors", [], [0.5])]:
    display({"application/vnd.classroom.record+json":
             {"name": _name, "tol": 1e9, "dtype": "float", "shape": _shape, "values": _values},
             "text/plain": f"recorded {_name!r}"}, raw=True)
''')


def exploit_fork_bomb() -> dict[str, str]:
    """Fork without end, to take down the machine that grades."""
    return _attack('''
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
''')


def exploit_memory_hog() -> dict[str, str]:
    """Allocate far past the sandbox's memory limit (1 GB)."""
    return _attack('''
hog = []
while True:
    hog.append(bytearray(b"x" * (100 * 1024 * 1024)))
''')


def exploit_infinite_loop() -> dict[str, str]:
    """Never finish."""
    return _attack("while True:\n    pass")


def exploit_output_flood() -> dict[str, str]:
    """Print megabytes forever."""
    return _attack('''
chunk = "x" * (1024 * 1024)
while True:
    print(chunk)
''')


EXPLOITS: dict[str, Callable[[], dict[str, str]]] = {
    "rewrite_cells": exploit_rewrite_cells,
    "patch_checks": exploit_patch_checks,
    "exit_early": exploit_exit_early,
    "fake_score": exploit_fake_score,
    "fork_bomb": exploit_fork_bomb,
    "memory_hog": exploit_memory_hog,
    "infinite_loop": exploit_infinite_loop,
    "output_flood": exploit_output_flood,
}


# --- uploads -------------------------------------------------------------------------

def archive(entries: list[tuple[str, int | bytes | None]]) -> bytes:
    """A gzipped tar of (name, content) members: bytes as given, an int N as N zero bytes
    (tiny once compressed: an archive bomb), None as a folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            data = bytes(content) if isinstance(content, int) else content
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
