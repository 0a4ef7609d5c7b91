"""Watch signals and gradients flow through a network, layer by layer.

A deep network trains well when, at every layer, the activations keep a sensible spread
(neither collapsing to zero nor saturating) and the gradients that come back keep a
sensible size (neither vanishing nor exploding). This module measures both:

- :func:`trace_layers` runs one forward (and, given a loss, one backward) pass with hooks
  on chosen layers (by default every activation module) and keeps, per layer, the
  activations that came out and the gradient of the loss with respect to them.
- :func:`dead_fraction` and :func:`saturated_fraction`: the share of units that are never
  active on a batch (dead ReLUs) and the share of values stuck at an activation's bounds
  (saturated sigmoid or tanh units).
- :func:`layer_stats` summarises the traces: one :class:`LayerStats` per layer.
- :func:`plot_layer_histograms` draws a histogram of activations and of gradients per
  layer, with the share of dead units in each title; :func:`plot_layer_stats` draws one
  statistic across depth for several runs (a gradient-flow plot).

:func:`nncourse.plot_gradient_flow` draws the gradients of the *parameters* after a
backward pass; this module looks at the *activations* and their gradients. Imported as
``from nncourse.gradflow import ...``. Plots return the matplotlib ``Figure`` and import
matplotlib on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from ._convert import to_numpy
from ._validate import positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ACTIVATION_TYPES",
    "LayerStats",
    "LayerTrace",
    "dead_fraction",
    "layer_stats",
    "plot_layer_histograms",
    "plot_layer_stats",
    "saturated_fraction",
    "trace_layers",
]

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
)
"""The module types :func:`trace_layers` watches unless told otherwise."""

_BOUNDS: dict[str, tuple[float, float]] = {"Tanh": (-1.0, 1.0), "Sigmoid": (0.0, 1.0)}


@dataclass(frozen=True)
class LayerTrace:
    """What one watched layer produced in :func:`trace_layers`.

    ``name`` is the module's name in the model (``"3"`` in an ``nn.Sequential``), with
    ``#2``, ``#3``, ... added when one module object is used several times; ``kind`` is its
    class name (``"ReLU"``). ``activations`` is its output and ``gradients`` the gradient of
    the loss with respect to that output (``None`` without a loss), both detached float32
    CPU tensors of shape ``(N, ...)``.
    """

    name: str
    kind: str
    activations: torch.Tensor
    gradients: torch.Tensor | None


@dataclass(frozen=True)
class LayerStats:
    """Summary of one :class:`LayerTrace` (see :func:`layer_stats`)."""

    name: str
    kind: str
    activation_mean: float
    activation_std: float
    dead_fraction: float
    saturated_fraction: float | None
    gradient_std: float | None


def _units(values: torch.Tensor) -> torch.Tensor:
    """``values`` as (examples, units): one column per unit, channels of images pooled."""
    if values.dim() == 0:
        raise ValueError("expected a batch of activations of shape (N, units) or (N, C, ...)")
    if values.dim() == 1:
        return values.reshape(-1, 1)
    if values.dim() > 2:  # (N, C, H, W): a channel is a unit, each position another example
        return values.movedim(1, -1).reshape(-1, values.shape[1])
    return values


def dead_fraction(activations: Any, threshold: float = 0.0) -> float:
    """The share of units that are never above ``threshold`` on this batch.

    The measure is meant for ReLU-like activations, whose output is at or below 0
    exactly where they pass no (or, for Leaky ReLU and GELU, little) gradient. A tanh unit
    that is negative for every example still passes gradient; for bounded activations use
    :func:`saturated_fraction`.

    ``activations`` has shape ``(N, units)`` (or ``(N, C, ...)``, where each channel is a
    unit). For ReLU the default threshold 0 counts the units that output 0 for every
    example: they pass no gradient back, so their incoming weights stop learning ("dead
    ReLUs"). For Leaky ReLU the same units are stuck on the leaky side. A batch too small
    to show a unit's rare activity overstates the share: use a few hundred examples.
    """
    values = _units(torch.as_tensor(to_numpy(activations)))
    if values.numel() == 0:
        raise ValueError("dead_fraction: the activations are empty.")
    return (values <= threshold).all(dim=0).double().mean().item()


def saturated_fraction(activations: Any, low: float, high: float, margin: float = 0.02) -> float:
    """The share of activation values within ``margin`` of ``low`` or ``high``.

    For tanh (bounds -1 and 1) or the sigmoid (0 and 1), a saturated value has a derivative
    near 0, so it passes almost no gradient back.
    """
    if not low < high:
        raise ValueError(f"saturated_fraction: low must be below high; got {low} and {high}.")
    values = torch.as_tensor(to_numpy(activations)).double()
    if values.numel() == 0:
        raise ValueError("saturated_fraction: the activations are empty.")
    stuck = (values <= low + margin) | (values >= high - margin)
    return stuck.double().mean().item()


def _watched(
    model: nn.Module, layer_types: Sequence[type[nn.Module]] | None
) -> list[tuple[str, nn.Module]]:
    types = tuple(layer_types) if layer_types is not None else ACTIVATION_TYPES
    chosen = [(name, module) for name, module in model.named_modules() if isinstance(module, types)]
    if not chosen:
        listed = ", ".join(t.__name__ for t in types)
        raise ValueError(
            f"trace_layers: the model has no module of the watched types ({listed}). Use "
            "activation modules (nn.ReLU(), ...) rather than functions (F.relu) in forward, or "
            "pass layer_types=(nn.Linear,) to watch other layers."
        )
    return chosen


def trace_layers(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    layer_types: Sequence[type[nn.Module]] | None = None,
) -> list[LayerTrace]:
    """Run ``model`` on ``inputs`` and return what each watched layer produced, in order.

    The watched layers are the modules of ``layer_types`` (default
    :data:`ACTIVATION_TYPES`: ``nn.ReLU``, ``nn.Tanh``, ...). With ``targets`` and a
    ``loss_fn(outputs, targets)``, one backward pass also gives each layer's gradient
    ``dL/d(output)``. The model's train/eval mode is left as it is, and so are the
    parameters' ``.grad``: like any backward pass this one adds to them, which
    :func:`nncourse.plot_gradient_flow` can then draw (call ``model.zero_grad()`` first if
    they held an earlier gradient). The hooks are removed before returning, also on error.
    """
    if (targets is None) != (loss_fn is None):
        raise ValueError(
            "trace_layers: pass both targets and loss_fn to trace gradients, or neither to "
            "trace activations only."
        )
    watched = _watched(model, layer_types)
    outputs: list[tuple[str, str, torch.Tensor]] = []
    gradients: dict[int, torch.Tensor] = {}
    uses: dict[str, int] = {}

    def forward_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, _args: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"trace_layers: layer {name!r} ({type(module).__name__}) returned a "
                    f"{type(output).__name__}, not a tensor; watch other layer types."
                )
            uses[name] = uses.get(name, 0) + 1
            shown = name if uses[name] == 1 else f"{name}#{uses[name]}"
            index = len(outputs)
            outputs.append((shown or type(module).__name__, type(module).__name__, output))
            if loss_fn is not None and output.requires_grad:
                output.register_hook(lambda grad: gradients.__setitem__(index, grad.detach()))

        return hook

    handles = [module.register_forward_hook(forward_hook(name)) for name, module in watched]
    try:
        with torch.set_grad_enabled(loss_fn is not None):
            result = model(inputs)
            if loss_fn is not None and targets is not None:
                loss = loss_fn(result, targets)
                if loss.dim() != 0:
                    raise ValueError(
                        f"trace_layers: loss_fn returned shape {tuple(loss.shape)}, not one "
                        "number; use a reduction such as 'mean'."
                    )
                loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    traces = []
    for index, (name, kind, output) in enumerate(outputs):
        gradient = gradients.get(index)
        traces.append(
            LayerTrace(
                name=name,
                kind=kind,
                activations=output.detach().to("cpu", torch.float32),
                gradients=None if gradient is None else gradient.to("cpu", torch.float32),
            )
        )
    return traces


def layer_stats(traces: Sequence[LayerTrace]) -> list[LayerStats]:
    """One :class:`LayerStats` per trace: mean and std of the activations, the share of
    dead units (:func:`dead_fraction`), the share of saturated values for tanh and sigmoid
    layers (``None`` for others) and the std of the gradients (``None`` without them)."""
    summary = []
    for trace in traces:
        values = trace.activations.double()
        bounds = _BOUNDS.get(trace.kind)
        summary.append(
            LayerStats(
                name=trace.name,
                kind=trace.kind,
                activation_mean=values.mean().item(),
                activation_std=values.std().item() if values.numel() > 1 else 0.0,
                dead_fraction=dead_fraction(trace.activations),
                saturated_fraction=None
                if bounds is None
                else saturated_fraction(trace.activations, *bounds),
                gradient_std=None
                if trace.gradients is None
                else (
                    trace.gradients.double().std().item() if trace.gradients.numel() > 1 else 0.0
                ),
            )
        )
    return summary


def _histogram(ax: Axes, values: np.ndarray, bins: int, colour: str, log_counts: bool) -> None:
    """Draw a histogram of ``values``; a constant (all gradients 0, say) is one labelled bar."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        return
    if finite.min() == finite.max():
        value = float(finite[0])
        ax.hist(
            finite,
            bins=1,
            range=(value - 0.5, value + 0.5),
            color=colour,
            alpha=0.8,
            log=log_counts,
        )
        ax.text(0.5, 0.5, f"all {value:g}", ha="center", va="center", transform=ax.transAxes)
        return
    ax.hist(finite, bins=bins, color=colour, alpha=0.8, log=log_counts)


def _sparse_ticks(ax: Axes) -> None:
    """Few ticks and no minor ones: many small log-scale panels otherwise take seconds to lay out."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

    ax.xaxis.set_major_locator(MaxNLocator(3))
    if ax.get_yscale() == "log":
        ax.yaxis.set_major_locator(LogLocator(numticks=4))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.tick_params(labelsize="x-small")


def plot_layer_histograms(
    traces: Sequence[LayerTrace],
    bins: int = 50,
    max_layers: int = 8,
    title: str | None = None,
) -> Figure:
    """One column per layer: a histogram of its activations (top) and of their gradients
    (bottom, when traced). Each title gives the layer's position (1 = the first traced
    layer), its kind, the activation std and the share of dead units (of saturated values
    for tanh and sigmoid layers, whose units never die); each gradient panel its std. Counts are on a log scale, so rare large values show. At most ``max_layers``
    layers are drawn, spread evenly over the depth.
    """
    positive_int("plot_layer_histograms", "bins", bins)
    positive_int("plot_layer_histograms", "max_layers", max_layers)
    if not traces:
        raise ValueError(
            "plot_layer_histograms: no traces; call trace_layers(model, x, ...) first."
        )
    import matplotlib.pyplot as plt

    picked = np.unique(
        np.linspace(0, len(traces) - 1, min(max_layers, len(traces))).round().astype(int)
    )
    shown = [traces[i] for i in picked]
    with_gradients = all(t.gradients is not None for t in shown)
    rows = 2 if with_gradients else 1
    figure, axes = plt.subplots(
        rows, len(shown), figsize=(2.3 * len(shown) + 0.5, 2.4 * rows + 0.4), squeeze=False
    )
    for column, (index, trace, stats) in enumerate(zip(picked, shown, layer_stats(shown))):
        top = axes[0][column]
        _histogram(top, to_numpy(trace.activations).ravel(), bins, "tab:blue", True)
        share = (
            f"saturated {stats.saturated_fraction:.0%}"
            if stats.saturated_fraction is not None
            else f"dead {stats.dead_fraction:.0%}"
        )
        top.set_title(
            f"layer {index + 1}: {trace.kind}\nstd {stats.activation_std:.2g}, {share}",
            fontsize="small",
        )
        _sparse_ticks(top)
        if with_gradients and trace.gradients is not None:
            bottom = axes[1][column]
            _histogram(bottom, to_numpy(trace.gradients).ravel(), bins, "tab:red", True)
            bottom.set_title(f"gradient std {stats.gradient_std:.2g}", fontsize="small")
            _sparse_ticks(bottom)
    axes[0][0].set_ylabel("activations\n(count, log)", fontsize="small")
    if with_gradients:
        axes[1][0].set_ylabel("gradients\n(count, log)", fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


_STAT_FIELDS = (
    "activation_mean",
    "activation_std",
    "dead_fraction",
    "saturated_fraction",
    "gradient_std",
)


def plot_layer_stats(
    runs: Mapping[str, Sequence[LayerStats]],
    field: str = "gradient_std",
    ax: Axes | None = None,
    log: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Draw one statistic of each layer against depth, one line per run (a gradient-flow plot).

    ``runs`` maps a label (an initialisation, an activation) to the :func:`layer_stats`
    of that run. ``field`` is one of ``activation_mean``, ``activation_std``,
    ``dead_fraction``, ``saturated_fraction`` or ``gradient_std``. ``log`` (default: for
    the two std fields) puts the values on a logarithmic axis, where a vanishing signal is
    a falling straight line and a steady one is flat.
    """
    if field not in _STAT_FIELDS:
        raise ValueError(
            f"plot_layer_stats: field must be one of {', '.join(_STAT_FIELDS)}; got {field!r}."
        )
    if not runs:
        raise ValueError("plot_layer_stats: runs is empty; pass {'label': layer_stats(traces)}.")
    use_log = field.endswith("_std") if log is None else log
    if ax is None:
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots(figsize=(6.5, 4.0))
    else:
        figure = cast("Figure", ax.figure)
    for label, stats in runs.items():
        values = [getattr(s, field) for s in stats]
        numbers = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        if use_log:
            numbers = np.where(numbers > 0, numbers, np.nan)
        ax.plot(np.arange(1, len(numbers) + 1), numbers, marker="o", markersize=3, label=label)
    if use_log:
        ax.set_yscale("log")
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel(field.replace("_", " ") + (" (log scale)" if use_log else ""))
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="best")
    figure.tight_layout()
    return figure
