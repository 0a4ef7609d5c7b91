"""The values test cells record, and the grader's comparison of them.

A test cell calls ``nncourse.record(name, value, tol=...)``, which adds an output
with the MIME type ``RECORD_MIME`` to the cell:

    {"name": "softmax rows", "tol": 1e-6, "dtype": "float", "shape": [2, 3],
     "values": [0.09, 0.24, ...]}

``dtype`` is "float", "int", "bool" or "text"; non-finite floats are the strings
"nan", "inf" and "-inf". The grader runs the instructor's solution once to get the
reference records, then compares each submission's records to them outside the
sandbox: the verdict never comes from the process that ran the student's code, and
the expected values never enter it.
"""
from __future__ import annotations

import ast
import math
import re
from typing import Any

from . import RECORD_MIME

MAX_VALUES = 1_000_000
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class BadRecord(ValueError):
    """A record output that is not in the format above."""


def parse(data: Any) -> dict[str, Any]:
    """Check one record's structure; return it with its values as Python numbers or strings."""
    if not isinstance(data, dict):
        raise BadRecord("a record is a JSON object")
    name, dtype, shape, values = data.get("name"), data.get("dtype"), data.get("shape"), data.get("values")
    tol = data.get("tol", 0.0)
    if not isinstance(name, str) or not name:
        raise BadRecord("a record needs a non-empty name")
    if dtype not in ("float", "int", "bool", "text"):
        raise BadRecord(f"record {name!r}: dtype must be float, int, bool or text")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise BadRecord(f"record {name!r}: shape must be a list of sizes")
    if not isinstance(values, list) or len(values) > MAX_VALUES:
        raise BadRecord(f"record {name!r}: values must be a list of at most {MAX_VALUES}")
    if math.prod(shape) != len(values):
        raise BadRecord(f"record {name!r}: shape {shape} does not hold {len(values)} values")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0:
        raise BadRecord(f"record {name!r}: tol must be a number >= 0")
    parsed = []
    for v in values:
        if dtype == "text":
            ok = isinstance(v, str)
        elif dtype == "bool":
            ok = isinstance(v, bool)
        elif dtype == "int":
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            if isinstance(v, str) and v in _SPECIAL:
                v = _SPECIAL[v]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            raise BadRecord(f"record {name!r}: a value is not of dtype {dtype}")
        parsed.append(v)
    return {"name": name, "tol": float(tol), "dtype": dtype, "shape": shape, "values": parsed}


def from_outputs(outputs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records among a cell's outputs, by name (a name may appear more than once)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for output in outputs:
        data = output.get("data") if isinstance(output, dict) else None
        if not isinstance(data, dict) or RECORD_MIME not in data:
            continue
        try:
            record = parse(data[RECORD_MIME])
        except BadRecord:
            continue
        found.setdefault(record["name"], []).append(record)
    return found


def _close(got: float, want: float, tol: float) -> bool:
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    difference = abs(got - want)
    return difference <= tol or difference <= tol * max(abs(got), abs(want))


def matches(reference: dict[str, Any], submitted: dict[str, Any]) -> bool:
    """Whether a submitted record equals the reference, within the reference's tolerance."""
    if submitted["shape"] != reference["shape"]:
        return False
    if reference["dtype"] == "float":
        if submitted["dtype"] not in ("float", "int"):
            return False
        return all(_close(float(g), float(w), reference["tol"])
                   for g, w in zip(submitted["values"], reference["values"]))
    if submitted["dtype"] != reference["dtype"]:
        return False
    return submitted["values"] == reference["values"]


def verdict(reference: dict[str, list[dict[str, Any]]],
            submitted: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The problems that fail a cell; an empty list means the cell passes.

    Every name the reference records must be recorded as many times, and each record
    must match the reference's record of that name at the same position: a test that
    records one name in a loop is compared step by step, in order. A forged extra
    record, or one missing, fails the cell."""
    problems = []
    for name, wanted in reference.items():
        got = submitted.get(name)
        if not got:
            problems.append(f"{name}: no value was recorded (the test did not run to the end)")
        elif len(got) != len(wanted):
            problems.append(f"{name}: recorded {len(got)} time(s), where the solution records it "
                            f"{len(wanted)} time(s)")
        else:
            wrong = [i for i, (want, record) in enumerate(zip(wanted, got), 1) if not matches(want, record)]
            if wrong and len(wanted) == 1:
                problems.append(f"{name}: the recorded value is not the expected one")
            elif wrong:
                problems.append(f"{name}: the recorded value is not the expected one at record "
                                f"{wrong[0]} of {len(wanted)}")
    return problems


def calls_record(source: str) -> bool:
    """Whether a cell's source calls `record(...)` (as `nncourse.record` or a bare `record`)."""
    code = "\n".join(line for line in source.split("\n") if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.search(r"\brecord\s*\(", source) is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "record":
                return True
    return False


def unrecorded_test_cells(notebook: dict[str, Any]) -> list[str]:
    """The grade ids of a source notebook's autograded test cells that call no `record`:
    graded "no error = full marks", which a student can fake (read from the source alone)."""
    found = []
    for cell in notebook.get("cells", []):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)  # on disk: a list of lines
        if cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution") \
                and not calls_record(source):
            found.append(str(meta.get("grade_id", "")))
    return found
