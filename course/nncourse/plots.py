"""Plots the course draws again and again.

Each function returns the matplotlib ``Figure`` and accepts an optional ``ax``
to draw into an existing layout. Nothing here calls ``plt.show()``: in a
notebook the figure appears when the cell ends (end the line with ``;`` or
assign the result to avoid a second copy), and in a script call
``plt.show()`` or ``fig.savefig(...)`` yourself.

matplotlib is imported by the first plot, not by ``import nncourse``: a
notebook that never plots starts its kernel about half a second sooner.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

from ._convert import to_numpy

__all__ = [
    "plot_attention",
    "plot_confusion_matrix",
    "plot_decision_boundary",
    "plot_feature_maps",
    "plot_filters",
    "plot_gradient_flow",
    "plot_history",
    "plot_image_grid",
    "plot_latent",
    "plot_roc_pr",
]


def _figure_and_axes(
    ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.5)
) -> tuple[Figure, Axes]:
    if ax is not None:
        return cast("Figure", ax.figure), ax
    import matplotlib.pyplot as plt

    figure, new_ax = plt.subplots(figsize=figsize)
    return figure, new_ax


def _class_colours(count: int) -> ListedColormap:
    """Return a colour map with one distinct colour per class index."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    palette = plt.get_cmap("tab10" if count <= 10 else "tab20")
    return ListedColormap(palette(np.arange(max(count, 1))))


def _history_curves(history: Any) -> dict[str, list[float]]:
    """Return the per-epoch lists of a History, a Keras History or a dict of lists."""
    if dataclasses.is_dataclass(history) and not isinstance(history, type):
        source: Mapping[str, Any] = dataclasses.asdict(history)
    elif isinstance(getattr(history, "history", None), Mapping):
        source = history.history  # a Keras History
    elif isinstance(history, Mapping):
        source = history
    else:
        raise TypeError(
            "plot_history expects the History that fit() returns, a Keras History, or a dict "
            f"of per-epoch lists such as {{'train_loss': [...]}}; got a {type(history).__name__}."
        )
    return {
        key: [float(v) for v in values]
        for key, values in source.items()
        if isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0
    }


def plot_history(history: Any, ax: Axes | None = None) -> Figure:
    """Plot loss and metric curves per epoch.

    ``history`` is what :func:`nncourse.train.fit` returns, a Keras ``History``,
    or a dict of per-epoch lists. Keys containing "loss" go in one panel and the
    rest (metrics) in a second; given an ``ax``, the metrics share it on a second
    y-axis. The best epoch, when known, is marked with a dotted line.
    """
    curves = _history_curves(history)
    if not curves:
        raise ValueError("plot_history: the history has no recorded epochs; train first.")
    losses = {k: v for k, v in curves.items() if "loss" in k}
    metrics = {k: v for k, v in curves.items() if "loss" not in k}
    if ax is None:
        import matplotlib.pyplot as plt

        panels = int(bool(losses)) + int(bool(metrics))
        figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.0), squeeze=False)
        loss_ax = axes[0][0]
        metric_ax = axes[0][-1]
    else:
        figure, loss_ax = cast("Figure", ax.figure), ax
        metric_ax = ax.twinx() if losses and metrics else ax
    for target, group, ylabel in ((loss_ax, losses, "loss"), (metric_ax, metrics, "metric")):
        for key, values in group.items():
            style = "--" if ax is not None and group is metrics else "-"
            target.plot(range(1, len(values) + 1), values, style, marker=".", label=key)
        if group:
            target.set_xlabel("epoch")
            target.set_ylabel(ylabel)
            target.legend(loc="best")
    best_epoch = getattr(history, "best_epoch", None)
    if best_epoch is not None:
        loss_ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
        loss_ax.legend(loc="best")
    figure.tight_layout()
    return figure


def _predict_classes(
    model_or_fn: nn.Module | Callable[[torch.Tensor], Any], grid: torch.Tensor, threshold: float
) -> np.ndarray:
    if isinstance(model_or_fn, nn.Module):
        parameter = next(model_or_fn.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        was_training = model_or_fn.training
        model_or_fn.eval()
        try:
            with torch.no_grad():
                outputs = to_numpy(model_or_fn(grid.to(device)))
        finally:
            model_or_fn.train(was_training)
    else:
        with torch.no_grad():
            outputs = to_numpy(model_or_fn(grid))
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return outputs.argmax(axis=1)
    if outputs.size == len(grid):
        return (outputs.reshape(-1) > threshold).astype(np.int64)
    raise ValueError(
        f"plot_decision_boundary: for {len(grid)} input points the model returned shape "
        f"{outputs.shape}; expected (N, classes) scores or (N,) / (N, 1) binary logits."
    )


def plot_decision_boundary(
    model_or_fn: nn.Module | Callable[[torch.Tensor], Any],
    X: Any,
    y: Any,
    ax: Axes | None = None,
    resolution: int = 200,
    threshold: float = 0.0,
) -> Figure:
    """Shade the class a model predicts over the plane, with the points ``X`` coloured by ``y``.

    ``model_or_fn`` is a module or a function of a float32 tensor of shape
    ``(N, 2)``; it returns ``(N, C)`` class scores (the arg-max wins) or one
    binary score per point (class 1 above ``threshold``: 0 for logits, use 0.5
    for probabilities). A module is evaluated in ``eval()`` mode on its own
    device. ``resolution`` is the number of grid points per axis.
    """
    points = to_numpy(X).astype(np.float64)
    labels = to_numpy(y).reshape(-1).astype(np.int64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(
            f"plot_decision_boundary draws 2D inputs: X must have shape (N, 2), got {points.shape}."
        )
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.1 * (high - low) + 1e-3
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = torch.as_tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1), dtype=torch.float32)
    predicted = _predict_classes(model_or_fn, grid, threshold).reshape(grid_x.shape)
    count = int(max(labels.max(initial=0), predicted.max(initial=0))) + 1
    colours = _class_colours(count)
    figure, ax = _figure_and_axes(ax)
    ax.contourf(
        grid_x, grid_y, predicted, levels=np.arange(count + 1) - 0.5, cmap=colours, alpha=0.3
    )
    ax.scatter(
        points[:, 0],
        points[:, 1],
        c=labels,
        cmap=colours,
        vmin=-0.5,
        vmax=count - 0.5,
        s=14,
        edgecolors="k",
        linewidths=0.3,
    )
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return figure


def plot_gradient_flow(
    named_parameters: Iterable[tuple[str, torch.Tensor]] | nn.Module, ax: Axes | None = None
) -> Figure:
    """Bar chart of the mean and largest absolute gradient of each parameter, on a log scale.

    Pass ``model.named_parameters()`` (or the model) after ``loss.backward()``.
    Bars shrinking towards the input layers show vanishing gradients; missing
    bars are gradients that are exactly zero (dead units).
    """
    pairs = (
        named_parameters.named_parameters()
        if isinstance(named_parameters, nn.Module)
        else named_parameters
    )
    names, means, largest = [], [], []
    for name, parameter in pairs:
        if parameter.grad is not None:
            magnitude = parameter.grad.detach().abs()
            names.append(name)
            means.append(magnitude.mean().item())
            largest.append(magnitude.max().item())
    if not names:
        raise ValueError(
            "plot_gradient_flow: no parameter has a gradient yet. Call loss.backward() first, then "
            "plot_gradient_flow(model.named_parameters())."
        )
    figure, ax = _figure_and_axes(ax, figsize=(max(6.0, 0.5 * len(names)), 4.5))
    positions = np.arange(len(names))
    ax.bar(positions, largest, color="tab:cyan", alpha=0.5, label="max |grad|")
    ax.bar(positions, means, color="tab:blue", label="mean |grad|")
    ax.set_xticks(positions, names, rotation=90)
    if max(largest) > 0:
        ax.set_yscale("log", nonpositive="clip")
    ax.set_ylabel("gradient magnitude")
    ax.legend(loc="best")
    figure.tight_layout()
    return figure


def _filter_tiles(weights: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return one image per filter, shape (K, H, W) or (K, H, W, 3), and whether it is colour."""
    if weights.ndim == 4 and weights.shape[1] == 3:
        return weights.transpose(0, 2, 3, 1), True
    if weights.ndim == 4:
        return weights[:, 0], False
    if weights.ndim == 3:
        return weights, False
    side = math.isqrt(weights.shape[1]) if weights.ndim == 2 else 0
    if weights.ndim == 2 and side * side == weights.shape[1]:
        return weights.reshape(len(weights), side, side), False
    raise ValueError(
        f"plot_filters expects a conv weight (out, in, kh, kw), (out, kh, kw), or a linear weight "
        f"(out, features) with a square number of features; got shape {weights.shape}."
    )


def _scaled_each(tiles: np.ndarray) -> np.ndarray:
    """Scale every tile (first axis) to [0, 1] by its own minimum and maximum."""
    axes_to_scale = tuple(range(1, tiles.ndim))
    low = tiles.min(axis=axes_to_scale, keepdims=True)
    high = tiles.max(axis=axes_to_scale, keepdims=True)
    return (tiles - low) / np.maximum(high - low, 1e-12)


def _mosaic(tiles: np.ndarray, columns: int) -> np.ndarray:
    """Lay tiles ``(K, H, W[, 3])`` out in rows of ``columns``, one blank pixel between (NaN)."""
    count, height, width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    mosaic = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1, *tiles.shape[3:]), np.nan)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        mosaic[
            row * (height + 1) : row * (height + 1) + height,
            column * (width + 1) : column * (width + 1) + width,
        ] = tile
    return mosaic


def _show_mosaic(mosaic: np.ndarray, colour: bool, ax: Axes | None, title: str) -> Figure:
    if colour:
        mosaic = np.nan_to_num(mosaic, nan=1.0)
    figure, ax = _figure_and_axes(ax, figsize=(6.0, 6.0))
    ax.imshow(mosaic, cmap=None if colour else "gray", interpolation="nearest", vmin=0.0, vmax=1.0)
    ax.set_title(title)
    ax.axis("off")
    return figure


def plot_filters(weight_tensor: Any, ax: Axes | None = None, max_filters: int = 64) -> Figure:
    """Show learned filters as a mosaic of small images, each scaled to its own range.

    Conv weights with 3 input channels are drawn in colour; with other channel
    counts, each filter's first input channel is drawn in grey. Linear weights
    ``(out, 784)`` are drawn as 28x28 images. At most ``max_filters`` are shown.
    """
    tiles, colour = _filter_tiles(to_numpy(weight_tensor).astype(np.float64))
    tiles = _scaled_each(tiles[:max_filters])
    mosaic = _mosaic(tiles, math.ceil(math.sqrt(len(tiles))))
    return _show_mosaic(mosaic, colour, ax, f"{len(tiles)} filters")


def plot_feature_maps(activations: Any, max_maps: int = 32, ax: Axes | None = None) -> Figure:
    """Show the feature maps of one image, ``(C, H, W)`` or ``(1, C, H, W)``, as a mosaic.

    Each map is scaled to its own range, so a weak but structured map is as
    visible as a strong one; at most ``max_maps`` channels are shown.
    """
    maps = to_numpy(activations).astype(np.float64)
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise ValueError(
            f"plot_feature_maps shows the maps of one image, shape (C, H, W), but got shape "
            f"{maps.shape}; pick one image of the batch first, e.g. activations[0]."
        )
    tiles = _scaled_each(maps[:max_maps])
    mosaic = _mosaic(tiles, math.ceil(math.sqrt(len(tiles))))
    return _show_mosaic(mosaic, False, ax, f"{len(tiles)} of {len(maps)} feature maps")


def _image_tiles(images: Any) -> tuple[np.ndarray, bool]:
    """Return images as ``(N, H, W)`` grey or ``(N, H, W, 3)`` colour, clipped to [0, 1]."""
    tiles = to_numpy(images).astype(np.float64)
    if tiles.ndim == 4 and tiles.shape[1] in (1, 3) and tiles.shape[-1] not in (1, 3):
        tiles = tiles.transpose(0, 2, 3, 1)
    if tiles.ndim == 4 and tiles.shape[-1] == 1:
        tiles = tiles[..., 0]
    if not (tiles.ndim == 3 or (tiles.ndim == 4 and tiles.shape[-1] == 3)):
        raise ValueError(
            f"plot_image_grid expects images (N, C, H, W), (N, H, W) or (N, H, W, 3) with 1 or 3 "
            f"channels, got shape {tiles.shape}; flat images need x.reshape(len(x), 28, 28)."
        )
    return np.clip(tiles, 0.0, 1.0), tiles.ndim == 4


def plot_image_grid(
    images: Any,
    ncols: int | None = None,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Show images in [0, 1] (values outside are clipped) in a grid of ``ncols`` columns.

    ``titles`` name each image; ``row_labels`` name each row (for example
    ``["input", "reconstruction"]`` when ``images`` is originals followed by
    their reconstructions and ``ncols`` is the number of originals). With an
    ``ax`` the grid is drawn as one mosaic and titles are not shown.
    """
    tiles, colour = _image_tiles(images)
    count = len(tiles)
    columns = ncols if ncols is not None else min(count, 8)
    if columns < 1:
        raise ValueError(f"plot_image_grid: ncols must be at least 1, got {ncols!r}.")
    rows = math.ceil(count / columns)
    for labels, size, what, of in (
        (titles, count, "titles", "images"),
        (row_labels, rows, "row_labels", "rows"),
    ):
        if labels is not None and len(labels) != size:
            raise ValueError(f"plot_image_grid: {len(labels)} {what} for {size} {of}; give one each.")
    if ax is not None:
        return _show_mosaic(_mosaic(tiles, columns), colour, ax, f"{count} images")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        rows, columns, figsize=(1.3 * columns, 1.4 * rows), squeeze=False
    )
    for index, grid_ax in enumerate(axes.flat):
        grid_ax.set_xticks([])
        grid_ax.set_yticks([])
        for spine in grid_ax.spines.values():
            spine.set_visible(False)
        if index >= count:
            continue
        grid_ax.imshow(tiles[index], cmap=None if colour else "gray", vmin=0.0, vmax=1.0)
        if titles is not None:
            grid_ax.set_title(titles[index], fontsize="small")
    if row_labels is not None:
        for row, label in enumerate(row_labels):
            axes[row, 0].set_ylabel(label, fontsize="small")
    figure.tight_layout()
    return figure


def plot_latent(z: Any, y: Any = None, ax: Axes | None = None) -> Figure:
    """Scatter latent codes ``z`` of shape ``(N, d)``, coloured by labels ``y``.

    Codes with more than two dimensions are projected on their first two
    principal components. Up to 20 distinct integer labels get a legend; other
    ``y`` (e.g. a continuous value) get a colour bar.
    """
    codes = to_numpy(z).astype(np.float64)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(
            f"plot_latent expects codes of shape (N, d) with d >= 2, got {codes.shape}; "
            "flatten per-example codes with z.reshape(len(z), -1)."
        )
    axis_names = ("$z_1$", "$z_2$")
    if codes.shape[1] > 2:
        centred = codes - codes.mean(axis=0)
        _, singular, directions = np.linalg.svd(centred, full_matrices=False)
        share = singular**2 / max(float((singular**2).sum()), 1e-12)
        codes = centred @ directions[:2].T
        axis_names = (f"PC 1 ({share[0]:.0%})", f"PC 2 ({share[1]:.0%})")
    figure, ax = _figure_and_axes(ax, figsize=(6.0, 5.0))
    if y is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=8, alpha=0.7)
    else:
        labels = to_numpy(y).reshape(-1)
        classes = np.unique(labels)
        if np.issubdtype(labels.dtype, np.integer) and len(classes) <= 20:
            colours = _class_colours(len(classes))
            for index, label in enumerate(classes):
                chosen = labels == label
                ax.scatter(
                    codes[chosen, 0],
                    codes[chosen, 1],
                    s=8,
                    alpha=0.7,
                    color=colours(index),
                    label=str(label),
                )
            ax.legend(loc="best", markerscale=2, fontsize="small")
        else:
            dots = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=8, alpha=0.7, cmap="viridis")
            figure.colorbar(dots, ax=ax)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    return figure


def plot_attention(
    weights: Any,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Show an attention map: one row per query, one column per key.

    ``weights`` has shape ``(queries, keys)``; leading dimensions of size 1
    (batch, head) are dropped. ``x_labels`` name the keys and ``y_labels`` the
    queries, e.g. the tokens.
    """
    matrix = to_numpy(weights).astype(np.float64)
    while matrix.ndim > 2 and matrix.shape[0] == 1:
        matrix = matrix[0]
    if matrix.ndim != 2:
        raise ValueError(
            f"plot_attention shows one (queries, keys) map but got shape {matrix.shape}; pick one "
            "batch item and head first, e.g. weights[0, 0]."
        )
    for labels, size, what in (
        (x_labels, matrix.shape[1], "x_labels for keys (columns)"),
        (y_labels, matrix.shape[0], "y_labels for queries (rows)"),
    ):
        if labels is not None and len(labels) != size:
            raise ValueError(f"plot_attention: {len(labels)} {what}, but there are {size}.")
    figure, ax = _figure_and_axes(ax, figsize=(6.0, 5.0))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0)
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), list(x_labels), rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), list(y_labels))
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    figure.colorbar(image, ax=ax)
    return figure


def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    normalize: bool = False,
) -> Figure:
    """Draw the confusion matrix of class indices: rows are true classes, columns predictions.

    ``labels`` are class names in index order. With ``normalize=True`` each row
    shows fractions of that true class (its recall on the diagonal).
    """
    truth = to_numpy(y_true).reshape(-1).astype(np.int64)
    predicted = to_numpy(y_pred).reshape(-1).astype(np.int64)
    if len(truth) != len(predicted):
        raise ValueError(
            f"plot_confusion_matrix: {len(truth)} true labels but {len(predicted)} predictions."
        )
    observed = int(max(truth.max(initial=0), predicted.max(initial=0))) + 1
    count = len(labels) if labels is not None else observed
    if count < observed:
        raise ValueError(
            f"plot_confusion_matrix: {len(labels or [])} label names but class indices go up to "
            f"{observed - 1}; give one name per class."
        )
    matrix = np.zeros((count, count), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    side = min(max(4.5, 1.5 + 0.6 * count), 12.0)
    figure, ax = _figure_and_axes(ax, figsize=(side, side))
    ax.imshow(shown, cmap="Blues")
    for row, column in np.ndindex(count, count):
        value = shown[row, column]
        ax.text(
            column,
            row,
            f"{value:.2f}" if normalize else str(value),
            ha="center",
            va="center",
            color="white" if value > shown.max() / 2 else "black",
        )
    names = list(labels) if labels is not None else [str(i) for i in range(count)]
    ax.set_xticks(range(count), names, rotation=45, ha="right")
    ax.set_yticks(range(count), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {np.trace(matrix) / max(len(truth), 1):.3f}")
    return figure


def plot_roc_pr(y_true: Any, scores: Any, ax: Sequence[Axes] | None = None) -> Figure:
    """Plot the ROC curve (with its AUC) and the precision-recall curve (with average precision).

    ``y_true`` holds 0/1 labels and ``scores`` one score per example, higher
    meaning more likely positive (probabilities or logits). ``ax`` is an optional
    pair of axes (ROC, PR).
    """
    # Imported here: scikit-learn takes about a second to import and few notebooks need it.
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    truth = to_numpy(y_true).reshape(-1)
    score = to_numpy(scores)
    score = score.reshape(-1) if score.ndim == 2 and score.shape[1] == 1 else score
    if score.ndim != 1 or len(score) != len(truth):
        raise ValueError(
            f"plot_roc_pr expects one score per example: {len(truth)} labels but scores of shape "
            f"{score.shape}. For two-class outputs pass the positive class's probability, "
            "e.g. probs[:, 1]."
        )
    if set(np.unique(truth).tolist()) != {0, 1}:
        raise ValueError(
            f"plot_roc_pr needs 0/1 labels with both classes present; got {np.unique(truth)[:10]}."
        )
    if ax is None:
        import matplotlib.pyplot as plt

        figure, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10.0, 4.5))
    elif len(ax) == 2:
        roc_ax, pr_ax = ax
        figure = cast("Figure", roc_ax.figure)
    else:
        raise ValueError("plot_roc_pr: ax must be a pair of axes (ROC, PR).")
    false_positive, true_positive, _ = roc_curve(truth, score)
    roc_ax.plot(false_positive, true_positive, label=f"AUC {roc_auc_score(truth, score):.3f}")
    roc_ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate (recall)")
    roc_ax.set_title("ROC")
    roc_ax.legend(loc="lower right")
    precision, recall, _ = precision_recall_curve(truth, score)
    pr_ax.plot(recall, precision, label=f"AP {average_precision_score(truth, score):.3f}")
    pr_ax.axhline(truth.mean(), color="k", linestyle="--", linewidth=0.8, label="base rate")
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    pr_ax.set_title("precision-recall")
    pr_ax.legend(loc="best")
    figure.tight_layout()
    return figure
