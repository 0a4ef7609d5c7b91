"""A small personalised assignment for the grading tests: "lab-personal" / "plab.ipynb".

The student's configuration (hidden units, activation, seed) comes from
`nncourse.personal.lab_config("tiny", SPACE)`, that is from their hub identity. The
answer builds a two-layer network from the configuration; the test cells record the
configuration, the parameter shapes and the network's output on a probe (3 points),
and write the student's integrity artifact (1 point). A submission built with
another student's configuration records other values and scores nothing.

Plain module (no tests here); it needs only nbformat.
"""
from __future__ import annotations

import nbformat
from nbformat import NotebookNode

from .assignment import _clear_hidden_tests, _clear_solution, _code, _markdown

ASSIGNMENT = "lab-personal"
NOTEBOOK = "plab"
POINTS = {"test-model": 3, "test-artifact": 1}
TOTAL_POINTS = sum(POINTS.values())

_IDENTIFIER = """
import torch
import nncourse
from nncourse.personal import Identity, lab_config, write_artifact

SPACE = {"hidden_units": (3, 4, 5, 6, 7, 8), "activation": ("relu", "tanh"), "seed": range(1, 1000)}
CONFIG = lab_config("tiny", SPACE)
CONFIG
"""

_BUILD = '''
def build(config):
    """A 2 -> hidden_units -> 1 network with the configured activation, seeded with config["seed"]."""
    ### BEGIN SOLUTION
    torch.manual_seed(config["seed"])
    activation = {"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh()}[config["activation"]]
    return torch.nn.Sequential(torch.nn.Linear(2, config["hidden_units"]), activation,
                               torch.nn.Linear(config["hidden_units"], 1))
    ### END SOLUTION
'''

_TEST_MODEL = """
model = build(CONFIG)
nncourse.record("configuration", CONFIG.as_text())
nncourse.record("parameter shapes", [list(p.shape) for p in model.parameters()][0])
### BEGIN HIDDEN TESTS
probe = torch.linspace(-2, 2, 10).reshape(5, 2)
nncourse.record("output on a probe", model(probe).detach(), tol=1e-5)
### END HIDDEN TESTS
"""

_TEST_ARTIFACT = """
with torch.no_grad():
    path = write_artifact(CONFIG, {"probe mean": float(build(CONFIG)(torch.ones(3, 2)).mean())})
nncourse.record("artifact of", path.name)
"""


def source_notebook() -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
                   "language_info": {"name": "python"}, "nncourse": {"personalised": "tiny"}}
    nb.cells = [
        _markdown("intro", "# A personalised lab\n\nRun the student identifier cell first: it shows your configuration."),
        _code("identifier", _IDENTIFIER, locked=True),
        _code("build", _BUILD, solution=True),
        _code("test-model", _TEST_MODEL, grade=True, locked=True, points=POINTS["test-model"]),
        _code("test-artifact", _TEST_ARTIFACT, grade=True, locked=True, points=POINTS["test-artifact"]),
    ]
    nbformat.validate(nb)
    return nb


def student_notebook(build_source: str | None = None) -> NotebookNode:
    """What a student hands in: the release with `build_source` as the answer (the solution by default)."""
    nb = source_notebook()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = build_source if build_source is not None else _BUILD_ANSWER
        elif meta.get("grade"):
            cell.source = _clear_hidden_tests(cell.source)
    return nb


# The student's own answer: right for any configuration (written differently from the solution).
_BUILD_ANSWER = """def build(config):
    torch.manual_seed(config["seed"])
    layers = [torch.nn.Linear(2, config["hidden_units"])]
    layers.append(torch.nn.Tanh() if config["activation"] == "tanh" else torch.nn.ReLU())
    layers.append(torch.nn.Linear(config["hidden_units"], 1))
    return torch.nn.Sequential(*layers)"""


def blank_notebook() -> NotebookNode:
    """The release, untouched."""
    return student_notebook(_clear_solution(_BUILD.strip("\n")))


def copied_notebook(student: str, key: str) -> NotebookNode:
    """A classmate's work: the right code, run with the classmate's configuration (their
    identity pasted in), as a student who copies a finished notebook hands it in."""
    answer = (f"CONFIG = lab_config('tiny', SPACE, who=Identity({student!r}, {key!r}, 'hub'))\n\n"
              + _BUILD_ANSWER)
    return student_notebook(answer)
