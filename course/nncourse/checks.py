"""Checks for exercise and test cells: gradient checks, shapes, closeness.

Passing checks print ``PASS: <what was checked>``; failing ones raise
``AssertionError("FAIL: <what was checked> — <what to look at>")`` so that the
autograder records the failure and the student reads why.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ._convert import to_float64

__all__ = [
    "TINY",
    "check",
    "check_close",
    "check_shape",
    "compare_with_autograd",
    "grad_check",
    "numerical_gradient",
    "rel_error",
]

TINY = 1e-12
"""Floor of :func:`rel_error`'s denominator, so that comparing zeros gives 0."""


def rel_error(a: Any, b: Any) -> float:
    """Return the relative error ``max|a - b| / max(|a| + |b|)`` between two arrays.

    The largest absolute difference is divided by the largest magnitude of the
    entries (floored at ``TINY``), so the result does not depend on the scale of
    the numbers and tiny entries do not blow it up. Identical inputs give 0;
    1e-7 or less is typical of a correct gradient in float64, 1e-2 or more
    of a bug. Accepts tensors, arrays, lists and numbers of the same shape.
    """
    left, right = to_float64(a), to_float64(b)
    if left.shape != right.shape:
        raise ValueError(
            f"rel_error: the inputs have different shapes, {tuple(left.shape)} and "
            f"{tuple(right.shape)}; compare arrays of the same shape."
        )
    if left.numel() == 0:
        return 0.0
    difference = (left - right).abs().max().item()
    scale = (left.abs() + right.abs()).max().item()
    return difference / max(scale, TINY)


def _float64_copy(x: Any) -> torch.Tensor:
    """Return ``x`` as a float64 tensor detached from any graph, on its own device."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).clone()
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).clone()


def _evaluate_scalar(f: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """Call ``f(x)`` and check that it returns one number, explaining common mistakes."""
    try:
        value = f(x)
    except RuntimeError as error:
        if "dtype" in str(error) or "Double" in str(error):
            raise RuntimeError(
                f"f failed on a float64 input ({error}). Gradient checks run in float64 for "
                "precision: convert the other tensors f uses with .double() (and a model with "
                "model.double())."
            ) from error
        raise
    size = value.numel() if isinstance(value, torch.Tensor) else np.size(value)
    if size != 1:
        shape = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
        raise ValueError(
            f"f must return a single number (the loss), but returned shape {shape}. "
            "Reduce it to a scalar, e.g. with .sum() or .mean()."
        )
    return value


def numerical_gradient(f: Callable[[torch.Tensor], Any], x: Any, eps: float = 1e-6) -> torch.Tensor:
    """Estimate the gradient of the scalar function ``f`` at ``x`` by central differences.

    Each entry is ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``, computed in
    float64; ``f`` is called ``2 * x.numel()`` times with a float64 tensor of
    ``x``'s shape. Returns a float64 tensor of ``x``'s shape.
    """
    point = _float64_copy(x)
    flat = point.view(-1)
    gradient = torch.zeros_like(flat)
    with torch.no_grad():
        for i in range(flat.numel()):
            original = flat[i].item()
            flat[i] = original + eps
            plus = float(_evaluate_scalar(f, point))
            flat[i] = original - eps
            minus = float(_evaluate_scalar(f, point))
            flat[i] = original
            gradient[i] = (plus - minus) / (2 * eps)
    return gradient.view_as(point)


def _autograd_gradient(f: Callable[[torch.Tensor], Any], point: torch.Tensor) -> torch.Tensor:
    leaf = point.clone().requires_grad_(True)
    value = _evaluate_scalar(f, leaf)
    if not isinstance(value, torch.Tensor) or value.grad_fn is None:
        raise ValueError(
            "grad_check: autograd cannot differentiate f, because its result is not connected to "
            "x (does f use NumPy, .item() or .detach()?). Keep f in torch operations, or pass the "
            "gradient you computed as analytic_grad=..."
        )
    (gradient,) = torch.autograd.grad(value, leaf, allow_unused=True)
    return torch.zeros_like(leaf) if gradient is None else gradient.detach()


def grad_check(
    f: Callable[[torch.Tensor], Any],
    x: Any,
    analytic_grad: Any = None,
    eps: float = 1e-6,
    tol: float = 1e-6,
) -> float:
    """Compare a gradient of the scalar function ``f`` at ``x`` with a numerical estimate.

    ``analytic_grad`` is the gradient to check, e.g. one your backward pass
    computed; when it is None, autograd's gradient of ``f`` is checked. Both are
    compared with :func:`numerical_gradient` by :func:`rel_error`. Returns that
    relative error, and raises AssertionError saying where the gradients differ
    most when it is above ``tol``.
    """
    point = _float64_copy(x)
    source = "autograd's gradient" if analytic_grad is None else "your gradient"
    if analytic_grad is None:
        analytic = _autograd_gradient(f, point)
    else:
        analytic = _float64_copy(analytic_grad).to(point.device)
        if analytic.shape != point.shape:
            raise AssertionError(
                f"FAIL: gradient check — the gradient has shape {tuple(analytic.shape)} but x has "
                f"shape {tuple(point.shape)}; a gradient has the shape of what it is taken with "
                "respect to."
            )
    numeric = numerical_gradient(f, point, eps)
    error = rel_error(analytic, numeric)
    if not error <= tol:
        worst = np.unravel_index(int((analytic - numeric).abs().argmax()), tuple(point.shape))
        index = tuple(int(i) for i in worst)
        raise AssertionError(
            f"FAIL: gradient check — relative error {error:.2e} is above the tolerance {tol:.0e}. "
            f"The largest difference is at index {index}: {source} is "
            f"{analytic[index].item():.6g}, the numerical estimate is "
            f"{numeric[index].item():.6g}. Check the backward formula for that entry "
            "(a correct gradient usually gives 1e-7 or less)."
        )
    return error


def compare_with_autograd(
    manual: Mapping[str, Any],
    params: Mapping[str, torch.Tensor] | nn.Module,
    tol: float = 1e-5,
) -> dict[str, float]:
    """Compare gradients computed by hand with the ``.grad`` autograd left on each parameter.

    ``manual`` maps names to your gradients; ``params`` maps the same names to
    the parameters, after ``loss.backward()`` (a module's ``named_parameters()``
    are used when a module is given). Prints a table of relative errors per name
    and returns them; raises AssertionError with the table when a name is missing,
    a shape differs or an error is above ``tol``.
    """
    named = dict(params.named_parameters()) if isinstance(params, nn.Module) else dict(params)
    rows: list[tuple[str, str, str, str]] = []
    errors: dict[str, float] = {}
    failed = False
    for name in [*named, *(n for n in manual if n not in named)]:
        shape, error_text, result = "", "", "ok"
        parameter = named.get(name)
        if parameter is None:
            result = "FAIL: not in params"
        elif name not in manual:
            shape, result = str(tuple(parameter.shape)), "FAIL: missing from manual"
        elif parameter.grad is None:
            shape = str(tuple(parameter.shape))
            result = "FAIL: .grad is None (call loss.backward(); requires_grad=True?)"
        else:
            mine = to_float64(manual[name])
            shape = str(tuple(parameter.shape))
            if mine.shape != parameter.grad.shape:
                result = f"FAIL: manual has shape {tuple(mine.shape)}"
            else:
                errors[name] = rel_error(mine, parameter.grad)
                error_text = f"{errors[name]:.2e}"
                if not errors[name] <= tol:
                    result = f"FAIL: above {tol:.0e}"
        failed = failed or result != "ok"
        rows.append((name, shape, error_text, result))
    table = _format_table(("name", "shape", "rel. error", "result"), rows)
    if failed:
        raise AssertionError(f"FAIL: manual gradients match autograd — see the table:\n{table}")
    print(table)
    print(f"PASS: manual gradients match autograd (tolerance {tol:.0e})")
    return errors


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _as_bool(name: str, condition: Any) -> bool:
    if isinstance(condition, torch.Tensor):
        count = condition.numel()
    else:
        count = np.size(condition) if isinstance(condition, np.ndarray) else 1
    if count != 1:
        raise TypeError(
            f"check({name!r}, ...) needs a single True/False, but the condition is an array of "
            f"shape {tuple(condition.shape)}. Reduce it with .all() or .any()."
        )
    return bool(condition)


def check(name: str, condition: Any, hint: str = "") -> None:
    """Print ``PASS: name`` if ``condition`` holds; else raise an AssertionError.

    The error reads ``FAIL: name — hint``. ``condition`` is a bool or a
    one-element tensor or array.
    """
    if not _as_bool(name, condition):
        raise AssertionError(f"FAIL: {name} — {hint}" if hint else f"FAIL: {name}")
    print(f"PASS: {name}")


def _format_shape(shape: Sequence[int | None]) -> str:
    parts = ["any" if size is None else str(size) for size in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_shape(t: Any, expected: Sequence[int | None], name: str = "tensor") -> None:
    """Check that ``t`` has the shape ``expected``, where None stands for any size.

    Example: ``check_shape(logits, (None, 10), "logits")`` prints
    ``PASS: logits has shape (any, 10)``, or fails saying which dimension differs.
    """
    if not hasattr(t, "shape"):
        raise TypeError(
            f"check_shape: {name} should be a tensor or array, but is a {type(t).__name__}. "
            "Convert it with torch.tensor(...) first."
        )
    actual = tuple(int(size) for size in t.shape)
    wanted = tuple(expected)
    description = f"{name} has shape {_format_shape(wanted)}"
    if len(actual) != len(wanted):
        check(
            description,
            False,
            f"it has {len(actual)} dimensions, shape {_format_shape(actual)}, but {len(wanted)} "
            "are expected. Look for a missing or extra dimension (unsqueeze, squeeze, view, "
            "flatten, or a wrong reduction).",
        )
    wrong = [
        f"dimension {i} is {size}, expected {want}"
        for i, (size, want) in enumerate(zip(actual, wanted))
        if want is not None and size != want
    ]
    check(
        description, not wrong, f"its shape is {_format_shape(actual)}: " + "; ".join(wrong) + "."
    )


def check_close(name: str, actual: Any, expected: Any, tol: float = 1e-6) -> None:
    """Check that ``actual`` equals ``expected`` up to ``tol``.

    Close means a relative error (:func:`rel_error`) or a largest absolute
    difference of at most ``tol``; the absolute test serves values near zero.
    Accepts tensors, arrays, lists and numbers.
    """
    got, want = to_float64(actual), to_float64(expected)
    if got.numel() == 1 and want.numel() == 1:
        got, want = got.reshape(()), want.reshape(())
    if got.shape != want.shape:
        check(name, False, f"expected shape {tuple(want.shape)} but got {tuple(got.shape)}.")
    if got.numel() == 0:
        check(name, True)
        return
    if torch.isnan(got).any() and not torch.isnan(want).any():
        check(name, False, "the result contains NaN; look for a division by zero or log(0).")
    difference = (got - want).abs()
    error = rel_error(got, want)
    largest = difference.max().item()
    if got.dim() == 0:
        where = f"expected {want.item():.6g} but got {got.item():.6g}"
    else:
        index = tuple(int(i) for i in np.unravel_index(int(difference.argmax()), tuple(got.shape)))
        where = (
            f"the largest difference is at index {index}: expected {want[index].item():.6g}, "
            f"got {got[index].item():.6g}"
        )
    close = error <= tol or largest <= tol
    check(name, close, f"{where} (relative error {error:.2e}, tolerance {tol:.0e}).")
