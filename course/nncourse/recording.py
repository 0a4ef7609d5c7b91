"""Record a value for the grader: ``record(name, value, tol=...)`` in a test cell.

The grading service compares what a submission records with what the instructor's
solution records, outside the sandbox that ran the student's code. A test cell
that records the values it checks cannot be passed by patching ``check``, by
rewriting the cell, or by printing a fake score: the values themselves must be
right. Record values (the output of the student's function on fixed inputs), not
verdicts (a True that any patched function could produce).

The output is a display bundle with the MIME type
``application/vnd.classroom.record+json`` (format in the grading service's
``classroom_grading.records``) and a one-line text form for people.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["record", "RECORD_MIME"]

RECORD_MIME = "application/vnd.classroom.record+json"


def _json_float(v: float) -> float | str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def encode(name: str, value: Any, tol: float = 1e-6) -> dict[str, Any]:
    """The record of ``value``: a tensor, array, number, bool, string, or a (nested) list of numbers."""
    if not isinstance(name, str) or not name:
        raise ValueError("record(name, value): name must be a non-empty string, such as 'softmax of x'")
    if isinstance(value, str):
        return {"name": name, "tol": tol, "dtype": "text", "shape": [], "values": [value]}
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
    else:
        try:
            array = np.asarray(value)
        except ValueError as error:
            raise TypeError(f"record({name!r}, ...): cannot record a ragged list ({error})") from None
    if array.dtype == bool:
        dtype, values = "bool", [bool(v) for v in array.ravel()]
    elif np.issubdtype(array.dtype, np.integer):
        dtype, values = "int", [int(v) for v in array.ravel()]
    elif np.issubdtype(array.dtype, np.floating):
        dtype, values = "float", [_json_float(float(v)) for v in array.ravel()]
    else:
        raise TypeError(
            f"record({name!r}, ...) takes a tensor, array, number, bool, string or list of numbers, "
            f"not {type(value).__name__}. Record the numbers the test checks."
        )
    return {"name": name, "tol": float(tol), "dtype": dtype, "shape": list(array.shape), "values": values}


def record(name: str, value: Any, tol: float = 1e-6) -> None:
    """Show ``value`` to the grader under ``name``; it is compared to the solution's within ``tol``."""
    data = encode(name, value, tol)
    shape = "x".join(str(n) for n in data["shape"]) or "scalar"
    text = f"recorded {name!r} ({data['dtype']}, {shape})"
    try:
        from IPython.display import display
    except ImportError:  # plain Python: nothing to show the grader
        print(text)
        return
    display({RECORD_MIME: data, "text/plain": text}, raw=True)
