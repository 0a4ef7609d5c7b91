"""A small, readable training loop with validation and early stopping."""

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._validate import positive_int
from .device import get_device

__all__ = [
    "History",
    "accuracy",
    "evaluate",
    "fit",
]

Metric = Callable[[torch.Tensor, torch.Tensor], float]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` recorded, one entry per epoch.

    ``val_*`` lists stay empty without a validation loader and ``*_metric``
    lists without a metric. ``best_epoch`` is the 1-based epoch with the lowest
    validation loss (None without validation); ``stopped_early`` says whether
    early stopping ended training before ``epochs``.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int | None = None
    stopped_early: bool = False


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the fraction of correct predictions.

    ``logits`` of shape ``(N, C)`` with C > 1 predict the arg-max class; shape
    ``(N,)`` or ``(N, 1)`` is one binary logit per example, predicting class 1
    when it is above 0. ``y`` holds class indices (or 0/1 for binary).
    """
    if logits.dim() == 2 and logits.shape[1] > 1:
        predicted = logits.argmax(dim=1)
    elif logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        predicted = (logits.reshape(-1) > 0).long()
    else:
        raise ValueError(
            f"accuracy: logits should have shape (N, C) or (N,), got {tuple(logits.shape)}. "
            "For sequences, flatten first: logits.reshape(-1, C) and y.reshape(-1)."
        )
    target = y.reshape(-1)
    if target.numel() != predicted.numel():
        raise ValueError(
            f"accuracy: {predicted.numel()} predictions but {target.numel()} labels "
            f"(logits {tuple(logits.shape)}, y {tuple(y.shape)}); they must be one per example."
        )
    return (predicted == target.long()).float().mean().item()


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(
        "fit/evaluate expect each batch to be a pair (inputs, targets), as a DataLoader over a "
        f"TensorDataset(X, y) gives; got a {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        + ". Make the dataset's __getitem__ return (x, y)."
    )


def _run_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: LossFn,
    metric: Metric | None,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    clip_grad_norm: float | None = None,
) -> tuple[float, float | None]:
    """Run one pass over ``loader``; train when an optimizer is given, else only evaluate.

    Returns the loss and metric averaged over examples (batches weighted by size).
    """
    total_loss, total_metric, count = 0.0, 0.0, 0
    for step, batch in enumerate(loader):
        inputs, targets = (t.to(device) for t in _unpack(batch))
        with torch.set_grad_enabled(optimizer is not None):
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
        if loss.dim() != 0:
            raise ValueError(
                f"the loss function returned shape {tuple(loss.shape)}, not one number; use a "
                "reduction such as 'mean' (the default of torch.nn losses)."
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at batch {step}. Usual causes: a learning rate "
                "that is too high (try 10x lower), NaN or huge values in the inputs (normalise "
                "them), or exploding gradients (pass clip_grad_norm=1.0)."
            )
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
        size = len(targets)
        total_loss += loss.item() * size
        if metric is not None:
            total_metric += metric(outputs.detach(), targets) * size
        count += size
    if count == 0:
        raise ValueError("the data loader produced no batches; is the dataset empty?")
    return total_loss / count, (total_metric / count if metric is not None else None)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: LossFn,
    metric: Metric | None = None,
    device: torch.device | str | None = None,
) -> tuple[float, float | None]:
    """Return ``(mean loss, mean metric or None)`` of ``model`` over ``loader``.

    Runs in ``eval()`` mode without gradients and restores the model's mode
    afterwards. ``device`` defaults to the device the model's parameters are on.
    """
    target_device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    try:
        return _run_epoch(model, loader, loss_fn, metric, target_device)
    finally:
        model.train(was_training)


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    val_loader: Iterable[Any] | None = None,
    metric: Metric | None = None,
    patience: int | None = None,
    device: torch.device | str | None = None,
    clip_grad_norm: float | None = None,
    verbose: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs`` passes over ``train_loader``, and return a History.

    Each epoch trains in ``train()`` mode (zero_grad, forward, loss, backward,
    optional gradient-norm clipping, step), then, with a ``val_loader``,
    evaluates in ``eval()`` mode without gradients. ``metric(outputs, targets)``
    (e.g. :func:`accuracy`) is averaged alongside the loss.

    With ``patience`` (needs ``val_loader``), training stops once the validation
    loss has not improved for ``patience`` epochs, and the weights of the best
    epoch are restored. ``device`` defaults to :func:`get_device` (the GPU when
    there is one); the model is moved there and each batch follows. ``verbose``
    prints one line per epoch.
    """
    if patience is not None and val_loader is None:
        raise ValueError(
            "fit: early stopping (patience=...) watches the validation loss, so it needs "
            "val_loader=...; pass one, or drop patience."
        )
    if patience is not None and patience < 1:
        raise ValueError(f"fit: patience must be at least 1 epoch, got {patience}.")
    positive_int("fit", "epochs", epochs)
    target_device = torch.device(device) if device is not None else get_device()
    model.to(target_device)
    history = History()
    best_loss, best_state = math.inf, None
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        train_loss, train_metric = _run_epoch(
            model, train_loader, loss_fn, metric, target_device, optimizer, clip_grad_norm
        )
        _record(history.train_loss, history.train_metric, train_loss, train_metric)
        history.epochs_run = epoch
        line = f"epoch {epoch}/{epochs}  train_loss {train_loss:.4f}"
        line += f"  train_metric {train_metric:.4f}" if train_metric is not None else ""
        if val_loader is not None:
            val_loss, val_metric = evaluate(model, val_loader, loss_fn, metric, target_device)
            _record(history.val_loss, history.val_metric, val_loss, val_metric)
            line += f"  val_loss {val_loss:.4f}"
            line += f"  val_metric {val_metric:.4f}" if val_metric is not None else ""
            if val_loss < best_loss:
                best_loss, history.best_epoch = val_loss, epoch
                if patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
        if verbose:
            print(f"{line}  ({time.perf_counter() - started:.1f}s)")
        if patience is not None and history.best_epoch is not None:
            if epoch - history.best_epoch >= patience:
                history.stopped_early = epoch < epochs
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        if verbose and history.best_epoch != history.epochs_run:
            print(f"restored the weights of epoch {history.best_epoch} (val_loss {best_loss:.4f})")
    return history


def _record(losses: list[float], metrics: list[float], loss: float, metric: float | None) -> None:
    losses.append(loss)
    if metric is not None:
        metrics.append(metric)
