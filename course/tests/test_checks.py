"""Gradient checks and the PASS/FAIL checks test cells use."""

import numpy as np
import pytest
import torch
from torch import nn

from nncourse.checks import (
    check,
    check_close,
    check_shape,
    compare_with_autograd,
    grad_check,
    numerical_gradient,
    rel_error,
)


def test_rel_error_is_scale_free_and_zero_for_equal_inputs() -> None:
    """Is rel_error max|a-b| / max(|a|+|b|), 0 for equal inputs and zeros?"""
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error(torch.zeros(3), np.zeros(3)) == 0.0
    assert rel_error([1.0, 10.0], [1.0, 11.0]) == pytest.approx(1 / 21)
    assert rel_error([1e-3, 1e-2], [1e-3, 1.1e-2]) == pytest.approx(1 / 21)


def test_rel_error_refuses_different_shapes() -> None:
    """Does comparing different shapes fail naming both?"""
    with pytest.raises(ValueError, match=r"different shapes, \(2,\) and \(3,\)"):
        rel_error([1.0, 2.0], [1.0, 2.0, 3.0])


def test_numerical_gradient_matches_the_derivative() -> None:
    """Is the central-difference gradient of sum(x^3) close to 3x^2, in float64?"""
    x = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    gradient = numerical_gradient(lambda t: (t**3).sum(), x)
    assert gradient.dtype == torch.float64 and gradient.shape == x.shape
    assert torch.allclose(gradient, 3 * x.double() ** 2, atol=1e-6)


def test_grad_check_accepts_a_correct_gradient() -> None:
    """Does a correct analytic gradient pass with a tiny relative error?"""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    error = grad_check(lambda t: (t.sin() * t).sum(), x, analytic_grad=x.sin() + x * x.cos())
    assert error < 1e-6


def test_grad_check_uses_autograd_when_no_gradient_is_given() -> None:
    """Without analytic_grad, is autograd's gradient checked (and found right)?"""
    weights = torch.randn(3, 2, dtype=torch.float64)
    assert grad_check(lambda t: torch.tanh(t @ weights).pow(2).sum(), torch.randn(5, 3)) < 1e-6


def test_grad_check_rejects_a_wrong_gradient_saying_where() -> None:
    """Does a wrong gradient fail with its relative error, tolerance and worst index?"""
    x = torch.tensor([1.0, 2.0, 3.0])
    wrong = 3 * x**2
    wrong[2] = 0.0
    with pytest.raises(AssertionError) as failure:
        grad_check(lambda t: (t**3).sum(), x, analytic_grad=wrong)
    message = str(failure.value)
    assert message.startswith("FAIL: gradient check")
    assert "above the tolerance 1e-06" in message
    assert "index (2,): your gradient is 0, the numerical estimate is 27" in message


def test_grad_check_explains_a_gradient_of_the_wrong_shape() -> None:
    """Does a gradient of another shape fail naming both shapes?"""
    with pytest.raises(AssertionError, match=r"shape \(3,\) but x has shape \(3, 1\)"):
        grad_check(lambda t: t.sum(), torch.ones(3, 1), analytic_grad=torch.ones(3))


def test_grad_check_explains_a_non_scalar_function() -> None:
    """Does a function returning a vector fail asking for a reduction?"""
    with pytest.raises(ValueError, match=r"single number.*shape \(3,\).*\.sum\(\)"):
        grad_check(lambda t: t**2, torch.ones(3))


def test_grad_check_explains_a_function_autograd_cannot_follow() -> None:
    """Does a function that leaves torch suggest analytic_grad?"""
    with pytest.raises(ValueError, match="not connected to x.*analytic_grad"):
        grad_check(lambda t: torch.tensor(float(t.detach().numpy().sum())), torch.ones(2))


def test_grad_check_explains_float32_weights() -> None:
    """Does mixing the float64 input with float32 weights suggest .double()?"""
    layer = nn.Linear(3, 1)
    with pytest.raises(RuntimeError, match=r"float64 input.*model.double\(\)"):
        grad_check(lambda t: layer(t).sum(), torch.ones(2, 3))


def _model_and_manual_gradients() -> tuple[nn.Linear, dict[str, torch.Tensor]]:
    """A linear model after backward() of an MSE loss, with its gradients derived by hand."""
    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 2)
    x, target = torch.randn(8, 3, generator=generator), torch.randn(8, 2, generator=generator)
    output = model(x)
    nn.functional.mse_loss(output, target).backward()
    d_output = 2 * (output.detach() - target) / output.numel()
    return model, {"weight": d_output.T @ x, "bias": d_output.sum(dim=0)}


def test_compare_with_autograd_passes_and_prints_a_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Do correct manual gradients pass, printing one row per parameter?"""
    model, manual = _model_and_manual_gradients()
    errors = compare_with_autograd(manual, model)
    assert set(errors) == {"weight", "bias"} and max(errors.values()) < 1e-5
    printed = capsys.readouterr().out
    assert "rel. error" in printed and "weight" in printed and "bias" in printed
    assert "PASS: manual gradients match autograd" in printed
    assert compare_with_autograd(manual, dict(model.named_parameters())) == errors


def test_compare_with_autograd_fails_with_the_table() -> None:
    """Does a wrong, a missing or an absent gradient fail with a row saying which?"""
    model, manual = _model_and_manual_gradients()
    manual["bias"] = manual["bias"] * 2
    with pytest.raises(AssertionError) as failure:
        compare_with_autograd(manual, model)
    assert "bias" in str(failure.value) and "FAIL: above 1e-05" in str(failure.value)
    with pytest.raises(AssertionError, match="FAIL: missing from manual"):
        compare_with_autograd({"weight": manual["weight"]}, model)
    with pytest.raises(AssertionError, match=r"\.grad is None \(call loss\.backward\(\)"):
        compare_with_autograd(manual, nn.Linear(3, 2))
    with pytest.raises(AssertionError, match=r"FAIL: manual has shape \(3, 2\)"):
        compare_with_autograd({**manual, "weight": manual["weight"].T}, model)


def test_check_prints_pass_or_raises_fail_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    """Does check print 'PASS: name', or raise 'FAIL: name — hint'?"""
    check("loss is positive", True)
    assert capsys.readouterr().out == "PASS: loss is positive\n"
    with pytest.raises(AssertionError) as failure:
        check("loss is positive", torch.tensor(-1.0) > 0, "did you forget the minus sign?")
    assert str(failure.value) == "FAIL: loss is positive — did you forget the minus sign?"
    with pytest.raises(AssertionError, match="^FAIL: no hint$"):
        check("no hint", False)


def test_check_refuses_an_array_condition() -> None:
    """Does an array condition ask for .all() or .any()?"""
    with pytest.raises(TypeError, match=r"shape \(3,\)\. Reduce it with \.all\(\) or \.any\(\)"):
        check("all positive", torch.ones(3) > 0)


def test_check_shape_allows_any_size_for_none(capsys: pytest.CaptureFixture[str]) -> None:
    """Does None in the expected shape match any size?"""
    check_shape(torch.zeros(32, 10), (None, 10), "logits")
    assert capsys.readouterr().out == "PASS: logits has shape (any, 10)\n"


def test_check_shape_says_which_dimension_differs() -> None:
    """Does a wrong size name the dimension, and a wrong rank the dimension counts?"""
    expected = r"^FAIL: logits has shape \(any, 10\) — its shape is \(32, 5\): dimension 1 is 5"
    with pytest.raises(AssertionError, match=expected + r", expected 10\.$"):
        check_shape(torch.zeros(32, 5), (None, 10), "logits")
    with pytest.raises(AssertionError, match=r"it has 1 dimensions, shape \(32,\), but 2 are"):
        check_shape(np.zeros(32), (32, 1), "y")
    with pytest.raises(TypeError, match="y should be a tensor or array, but is a list"):
        check_shape([1, 2], (2,), "y")


def test_check_close_passes_within_tolerance(capsys: pytest.CaptureFixture[str]) -> None:
    """Do values equal up to tol pass, including values near zero and mixed types?"""
    check_close("mean", torch.tensor([0.5000001, 0.0]), [0.5, 1e-9], tol=1e-6)
    check_close("scalar", torch.tensor([2.0]), 2.0)
    assert capsys.readouterr().out == "PASS: mean\nPASS: scalar\n"


def test_check_close_shows_expected_and_actual() -> None:
    """Does a mismatch show the worst index, both values, and the tolerance?"""
    expected = r"^FAIL: probs — the largest difference is at index \(1,\): expected 0\.7, got 0\.6"
    with pytest.raises(
        AssertionError, match=expected + r" \(relative error .*, tolerance 1e-06\)\.$"
    ):
        check_close("probs", [0.3, 0.6], [0.3, 0.7])
    with pytest.raises(AssertionError, match=r"expected shape \(2,\) but got \(3,\)"):
        check_close("probs", [0.3, 0.6, 0.1], [0.3, 0.7])
    with pytest.raises(AssertionError, match="contains NaN"):
        check_close("loss", float("nan"), 1.0)


def test_check_close_takes_reversed_numpy_arrays() -> None:
    values = np.arange(5.0)
    check_close("reversed", values[::-1], np.array([4.0, 3.0, 2.0, 1.0, 0.0]))
