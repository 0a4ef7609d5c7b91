"""The training loop: learning, validation, early stopping and clear failures."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nncourse.toydata import make_moons
from nncourse.train import History, accuracy, evaluate, fit


def _loader(X: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> DataLoader:
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=False)


def _fit_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module) -> History:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return fit(model, loader, loss_fn, optimizer, epochs=1, device="cpu", verbose=False)


def test_accuracy_reads_multiclass_and_binary_logits() -> None:
    """Does accuracy take the arg-max of (N, C) logits and threshold (N,) logits at 0?"""
    assert accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])) == 0.5
    binary = accuracy(torch.tensor([1.5, -0.5, 2.0]), torch.tensor([1.0, 0.0, 0.0]))
    assert binary == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([[1.5], [-0.5]]), torch.tensor([[1], [0]])) == 1.0
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        accuracy(torch.zeros(3, 4), torch.zeros(2))


def test_fit_learns_the_moons_and_records_history(capsys: pytest.CaptureFixture[str]) -> None:
    """Does fit train an MLP past 90% validation accuracy and record every epoch?"""
    torch.manual_seed(0)
    X, y = make_moons(600, noise=0.15, seed=0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    history = fit(
        model, _loader(X[:400], y[:400], 32), nn.CrossEntropyLoss(),
        torch.optim.Adam(model.parameters(), lr=0.02), epochs=15,
        val_loader=_loader(X[400:], y[400:]), metric=accuracy, device="cpu",
        clip_grad_norm=5.0,
    )  # fmt: skip
    assert isinstance(history, History)
    assert history.epochs_run == 15 and not history.stopped_early
    for values in (history.train_loss, history.val_loss, history.train_metric, history.val_metric):
        assert len(values) == 15
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_metric[-1] > 0.9
    assert history.best_epoch is not None and 1 <= history.best_epoch <= 15
    assert "epoch 15/15" in capsys.readouterr().out


def test_early_stopping_restores_the_best_weights() -> None:
    """When validation loss only rises, does fit stop after patience and restore epoch 1?

    Training pulls w towards 2 while the validation targets want -2, so every
    epoch after the first is worse on validation.
    """
    x = torch.linspace(-1, 1, 32).unsqueeze(1)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    loss_fn = nn.MSELoss()
    history = fit(
        model, _loader(x, 2 * x, 8), loss_fn, torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=20, val_loader=_loader(x, -2 * x), patience=2, device="cpu", verbose=False,
    )  # fmt: skip
    assert history.stopped_early and history.epochs_run == 3 and history.best_epoch == 1
    assert history.val_loss[0] < history.val_loss[1] < history.val_loss[2]
    restored_loss, metric = evaluate(model, _loader(x, -2 * x), loss_fn)
    assert restored_loss == pytest.approx(history.val_loss[0])
    assert metric is None


def test_evaluate_restores_the_mode_and_builds_no_graph() -> None:
    """Does evaluate run without gradients and leave a training model in training mode?"""
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.train()
    X, y = make_moons(50)
    loss, acc = evaluate(model, _loader(X, y), nn.CrossEntropyLoss(), accuracy)
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())
    assert loss > 0 and acc is not None and 0.0 <= acc <= 1.0


def test_fit_stops_on_a_non_finite_loss_with_advice() -> None:
    """Does a NaN loss stop training with the usual causes listed?"""
    X = torch.tensor([[float("nan"), 0.0]] * 4)
    model = nn.Linear(2, 2)
    with pytest.raises(FloatingPointError, match=r"loss became nan at batch 0.*learning rate"):
        _fit_one_epoch(model, _loader(X, torch.zeros(4, dtype=torch.long)), nn.CrossEntropyLoss())


def test_fit_explains_misuse() -> None:
    """Do patience without validation, a bad batch and an unreduced loss fail with advice?"""
    model = nn.Linear(2, 2)
    X, y = make_moons(8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="needs val_loader"):
        fit(model, _loader(X, y), nn.CrossEntropyLoss(), optimizer, epochs=2, patience=1)
    with pytest.raises(ValueError, match=r"pair \(inputs, targets\).*got a list of length 1"):
        _fit_one_epoch(model, DataLoader(TensorDataset(X), batch_size=4), nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match=r"returned shape \(4,\), not one number"):
        _fit_one_epoch(model, _loader(X, y, 4), nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(ValueError, match="fit: epochs must be a whole number >= 1, got 0"):
        fit(model, _loader(X, y), nn.CrossEntropyLoss(), optimizer, epochs=0)
