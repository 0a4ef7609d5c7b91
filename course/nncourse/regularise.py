"""Regularisation experiments: seeded splits, a tensor training loop with hooks, weights inspected.

- :func:`digits_split`: scikit-learn's digits as seeded, disjoint training, validation
  and test tensors, with a training set as small as you like (small sets overfit).
- :func:`train_classifier`: a mini-batch training loop over tensors in memory, seeded, that
  evaluates the whole training and validation sets after every epoch, and takes the
  three things a regularisation experiment changes: a ``penalty(model)`` added to the
  loss, an ``augment(x, generator)`` applied to each batch, and a ``callback`` that can
  stop training (early stopping).
- :func:`weight_parameters`, :func:`weight_norms`: the weights a penalty acts on
  (matrices and kernels, not biases) and their sizes.
- :func:`shift_images`: a random shift of each image by whole pixels, a label-preserving
  augmentation for digits.
- :func:`plot_weight_histograms`: the distributions of the weights of several models, to
  see what L1 and L2 penalties do to them.

Imported as ``from nncourse.regularise import ...``. Plots return the matplotlib
``Figure`` and import matplotlib on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._convert import to_numpy
from ._validate import positive_int
from .imagesets import load_digits
from .train import History, accuracy

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "digits_split",
    "plot_weight_histograms",
    "shift_images",
    "train_classifier",
    "weight_norms",
    "weight_parameters",
]

Penalty = Callable[[nn.Module], torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Callback = Callable[[int, History, nn.Module], bool]


def digits_split(
    n_train: int = 200, n_val: int = 400, seed: int = 0, flatten: bool = True
) -> tuple[torch.Tensor, ...]:
    """Return ``X_train, y_train, X_val, y_val, X_test, y_test`` from the 1,797 digits.

    The examples are shuffled with ``seed`` and cut into ``n_train`` training and
    ``n_val`` validation examples; the rest (at least 100) is the test set. Images are
    float32 in [0, 1], of shape ``(N, 64)`` with ``flatten`` and ``(N, 1, 8, 8)`` without;
    labels are int64 digits. A training set of a few hundred digits or fewer lets a
    network of a few thousand weights memorise it: the setting for overfitting on purpose.
    """
    positive_int("digits_split", "n_train", n_train)
    positive_int("digits_split", "n_val", n_val)
    X, y = load_digits(flatten=flatten)
    if n_train + n_val > len(X) - 100:
        raise ValueError(
            f"digits_split: {n_train} + {n_val} examples leave fewer than 100 of the {len(X)} "
            "digits for the test set; ask for fewer."
        )
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    return tuple(t for part in parts for t in (X[part], y[part]))


def weight_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters a weight penalty usually acts on: ``(name, parameter)`` pairs.

    These are the weights of layers (``*.weight`` with two or more dimensions: linear
    matrices and convolution kernels). Biases and the scales of normalisation layers are
    left out by convention: they do not make a function more complex, and shrinking them
    only costs fit.
    """
    return [
        (name, parameter)
        for name, parameter in model.named_parameters()
        if name.split(".")[-1] == "weight" and parameter.dim() >= 2
    ]


def weight_norms(model: nn.Module) -> dict[str, float]:
    """The Euclidean norm of each weight of :func:`weight_parameters`, by name."""
    return {
        name: parameter.detach().double().norm().item()
        for name, parameter in weight_parameters(model)
    }


def shift_images(
    images: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image of ``(N, C, H, W)`` by random whole pixels, filling with zeros.

    Each image gets its own vertical and horizontal shift, drawn uniformly from
    ``-max_shift .. max_shift`` with ``generator`` (on the CPU). A flat batch ``(N, 64)``
    of 8x8 digits is accepted too and returned flat. A shifted digit is still the same
    digit: this is a label-preserving augmentation.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"shift_images: max_shift must be a whole number >= 0, got {max_shift!r}.")
    flat = images.dim() == 2
    if flat:
        side = round(images.shape[1] ** 0.5)
        if side * side != images.shape[1]:
            raise ValueError(
                f"shift_images: a flat batch must hold square images; got {images.shape[1]} "
                "pixels per row. Pass (N, C, H, W) instead."
            )
        images = images.reshape(len(images), 1, side, side)
    if images.dim() != 4:
        raise ValueError(
            f"shift_images: expected (N, C, H, W) images, got shape {tuple(images.shape)}."
        )
    n, _, height, width = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).to(images.device)
    padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
    rows = torch.arange(height, device=images.device)[None, :] + max_shift - shifts[:, :1]
    cols = torch.arange(width, device=images.device)[None, :] + max_shift - shifts[:, 1:]
    batch = torch.arange(n, device=images.device)[:, None, None]
    moved = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(
        0, 3, 1, 2
    )
    return moved.reshape(n, -1) if flat else moved.contiguous()


def _evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: Callable[..., torch.Tensor]
) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(X)
            return loss_fn(outputs, y).item(), accuracy(outputs, y)
    finally:
        model.train(was_training)


def train_classifier(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    batch_size: int = 32,
    seed: int = 0,
    loss_fn: Callable[..., torch.Tensor] = F.cross_entropy,
    penalty: Penalty | None = None,
    augment: Augment | None = None,
    callback: Callback | None = None,
) -> History:
    """Train a classifier on tensors for up to ``epochs`` epochs and return its History.

    Each epoch visits the training examples in an order drawn from a generator seeded
    with ``seed`` (the same call gives the same run), in mini-batches of ``batch_size``:
    ``augment(xb, generator)`` (if given) transforms the batch, the loss is
    ``loss_fn(model(xb), yb)`` plus ``penalty(model)`` (if given), then backward and an
    optimizer step, in ``train()`` mode (so dropout is on).

    After each epoch the model is evaluated in ``eval()`` mode on the *whole* training
    set and on ``X_val, y_val``, without penalty or augmentation: ``train_loss`` and
    ``val_loss`` are the data loss, ``train_metric`` and ``val_metric`` the accuracy.
    ``best_epoch`` is the epoch with the lowest validation loss. ``callback(epoch,
    history, model)`` runs after the evaluation and stops training by returning True
    (``stopped_early`` is then set). Data are moved to the device of the model's
    parameters.
    """
    positive_int("train_classifier", "epochs", epochs)
    positive_int("train_classifier", "batch_size", batch_size)
    if (X_val is None) != (y_val is None):
        raise ValueError("train_classifier: pass both X_val and y_val, or neither.")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    X, y = X.to(device), y.to(device)
    if X_val is not None and y_val is not None:
        X_val, y_val = X_val.to(device), y_val.to(device)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    best = float("inf")
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(X), generator=generator).to(device)
        for start in range(0, len(X), batch_size):
            batch = order[start : start + batch_size]
            xb, yb = X[batch], y[batch]
            if augment is not None:
                xb = augment(xb, generator)
            loss = loss_fn(model(xb), yb)
            if penalty is not None:
                loss = loss + penalty(model)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"train_classifier: the loss became {loss.item()} in epoch {epoch}; lower "
                    "the learning rate or the penalty's strength."
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_loss, train_accuracy = _evaluate(model, X, y, loss_fn)
        history.train_loss.append(train_loss)
        history.train_metric.append(train_accuracy)
        if X_val is not None and y_val is not None:
            val_loss, val_accuracy = _evaluate(model, X_val, y_val, loss_fn)
            history.val_loss.append(val_loss)
            history.val_metric.append(val_accuracy)
            if val_loss < best:
                best, history.best_epoch = val_loss, epoch
        history.epochs_run = epoch
        if callback is not None and callback(epoch, history, model):
            history.stopped_early = epoch < epochs
            break
    return history


def plot_weight_histograms(
    models: Mapping[str, nn.Module],
    bins: int = 80,
    ax: Axes | None = None,
    limit: float | None = None,
) -> Figure:
    """Overlay the histograms of the weights (:func:`weight_parameters`) of several models.

    ``models`` maps a label (the regulariser) to a model. Counts are on a log scale, so the
    spike at zero that an L1 penalty makes, and the long tails of an unregularised model,
    both show. ``limit`` cuts the x axis at ``[-limit, limit]`` (default: the largest
    weight); each label gives the share of weights within 1e-3 of zero.
    """
    positive_int("plot_weight_histograms", "bins", bins)
    if not models:
        raise ValueError("plot_weight_histograms: models is empty; pass {'label': model}.")
    values = {
        label: np.concatenate(
            [to_numpy(p).ravel() for _, p in weight_parameters(model)] or [np.zeros(0)]
        )
        for label, model in models.items()
    }
    largest = max((float(np.abs(v).max()) for v in values.values() if v.size), default=1.0)
    edge = limit if limit is not None else largest
    if ax is None:
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots(figsize=(7.0, 4.0))
    else:
        figure = cast("Figure", ax.figure)
    for label, weights in values.items():
        if weights.size == 0:
            continue
        near_zero = float(np.mean(np.abs(weights) < 1e-3))
        ax.hist(
            np.clip(weights, -edge, edge),
            bins=np.linspace(-edge, edge, bins + 1).tolist(),
            histtype="step",
            linewidth=1.5,
            log=True,
            label=f"{label} ({near_zero:.0%} within 1e-3 of 0)",
        )
    ax.set_xlabel("weight value")
    ax.set_ylabel("count (log scale)")
    ax.legend(fontsize="small", loc="best")
    figure.tight_layout()
    return figure
