"""Pictures of optimisation: loss surfaces, optimiser trajectories on them, several runs compared.

- :class:`Surface` and :data:`SURFACES`: two-parameter test functions with known minima
  (``"ravine"``, ``"rosenbrock"``, ``"himmelblau"``, ``"two_wells"``), small enough to
  draw and to descend in milliseconds.
- :func:`descend`: run an optimiser (``torch.optim`` or one of your own with
  ``zero_grad()`` and ``step()``) on a two-parameter function and keep its trajectory.
- :func:`plot_contours`, :func:`plot_surface_3d`: a function of two parameters drawn as
  contour lines or as a surface.
- :func:`plot_trajectories`: several trajectories on one contour plot.
- :func:`plot_loss_curves`: several loss curves on one axes, with the runs that diverged
  marked where they did.
- :func:`random_directions`, :func:`loss_along`, :func:`loss_slice`: a neural network's
  loss along one or two directions in its parameter space (the filter-normalised
  directions of Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018), and
  along the line between two trained networks.

Each plot returns the matplotlib ``Figure`` and accepts an ``ax`` to draw into, as
:mod:`nncourse.plots` does; matplotlib is imported by the first plot. Imported as
``from nncourse.optimviz import ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from torch import nn

from ._convert import to_numpy
from ._validate import positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "SURFACES",
    "Surface",
    "Trajectory",
    "descend",
    "loss_along",
    "loss_slice",
    "plot_contours",
    "plot_loss_curves",
    "plot_surface_3d",
    "plot_trajectories",
    "random_directions",
    "surface",
]

Extent = tuple[float, float, float, float]
Function2D = Callable[[torch.Tensor], torch.Tensor]


class StepOptimizer(Protocol):
    """What :func:`descend` needs from an optimiser: ``zero_grad()`` and ``step()``."""

    def zero_grad(self) -> Any:
        """Reset the parameters' gradients."""

    def step(self) -> Any:
        """Update the parameters from their gradients."""


@dataclass(frozen=True)
class Surface:
    """A function of two parameters with what is needed to draw and descend it.

    ``f`` maps a tensor of shape ``(..., 2)`` to its values, shape ``(...)``.
    ``extent`` is ``(x_min, x_max, y_min, y_max)`` for plots, ``start`` a starting
    point that shows the surface's difficulty, ``minima`` its (local and global)
    minima, and ``log_levels`` whether contour levels should be spaced
    logarithmically (for surfaces whose values span several orders of magnitude).
    Call the surface like its function: ``surface(points)``.
    """

    name: str
    f: Function2D
    extent: Extent
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    log_levels: bool = False
    description: str = ""

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """The surface's values at ``points`` of shape ``(..., 2)``."""
        return self.f(points)


def _ravine(p: torch.Tensor) -> torch.Tensor:
    return 0.5 * p[..., 0] ** 2 + 10.0 * p[..., 1] ** 2


def _rosenbrock(p: torch.Tensor) -> torch.Tensor:
    return (1 - p[..., 0]) ** 2 + 100.0 * (p[..., 1] - p[..., 0] ** 2) ** 2


def _himmelblau(p: torch.Tensor) -> torch.Tensor:
    x, y = p[..., 0], p[..., 1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _two_wells(p: torch.Tensor) -> torch.Tensor:
    x, y = p[..., 0], p[..., 1]
    return (x**2 - 1) ** 2 + 0.3 * x + 0.5 * y**2


def _two_wells_minima() -> tuple[tuple[float, float], ...]:
    """The two minima of (x² - 1)² + 0.3 x + y²/2: roots of 4x³ - 4x + 0.3 where f'' > 0."""
    roots = np.roots([4.0, 0.0, -4.0, 0.3]).real
    wells = sorted(float(r) for r in roots if 12 * r**2 - 4 > 0)
    return tuple((x, 0.0) for x in wells)


SURFACES: dict[str, Surface] = {
    "ravine": Surface(
        "ravine", _ravine, (-6.0, 6.0, -2.5, 2.5), (-5.0, 1.5), ((0.0, 0.0),),
        description="0.5 x² + 10 y²: a narrow valley, 20 times more curved across than along",
    ),
    "rosenbrock": Surface(
        "rosenbrock", _rosenbrock, (-2.0, 2.0, -1.0, 3.0), (-1.5, 2.0), ((1.0, 1.0),), True,
        description="(1 - x)² + 100 (y - x²)²: a curved, flat-bottomed valley",
    ),
    "himmelblau": Surface(
        "himmelblau", _himmelblau, (-5.0, 5.0, -5.0, 5.0), (0.0, 0.0),
        ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
        True,
        description="(x² + y - 11)² + (x + y² - 7)²: four minima, all global (value 0)",
    ),
    "two_wells": Surface(
        "two_wells", _two_wells, (-2.0, 2.0, -1.5, 1.5), (1.6, 1.0), _two_wells_minima(),
        description="(x² - 1)² + 0.3 x + y²/2: a global minimum near x = -1, a local one at x = 1",
    ),
}  # fmt: skip
"""The two-parameter test surfaces, by name."""


def surface(name: str) -> Surface:
    """Return the :class:`Surface` called ``name`` (one of ``SURFACES``)."""
    if name not in SURFACES:
        raise ValueError(f"surface: no surface {name!r}; choose one of {', '.join(SURFACES)}.")
    return SURFACES[name]


@dataclass
class Trajectory:
    """Where an optimiser went: ``points`` ``(k, 2)`` and their ``losses`` ``(k,)``, start first.

    ``diverged`` is True when the run stopped early because the loss became infinite or
    NaN or the point left the box ``|x|, |y| < limit``; the last point is then the
    first one outside.
    """

    points: torch.Tensor
    losses: torch.Tensor
    diverged: bool = False
    lrs: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        """The number of points, the start included."""
        return len(self.points)


def descend(
    f: Function2D,
    start: Sequence[float] | torch.Tensor,
    make_optimizer: Callable[[list[torch.Tensor]], StepOptimizer],
    steps: int,
    make_scheduler: Callable[[Any], Any] | None = None,
    limit: float = 1e6,
    dtype: torch.dtype = torch.float64,
) -> Trajectory:
    """Minimise ``f`` from ``start`` with ``steps`` optimiser steps; return the :class:`Trajectory`.

    ``make_optimizer([p])`` builds the optimiser for the single parameter ``p`` (a leaf
    tensor of shape ``(2,)``), e.g. ``lambda params: torch.optim.Adam(params, lr=0.1)``
    or a class of your own with ``zero_grad()`` and ``step()``. Each step computes
    ``f(p)``, calls ``zero_grad()``, ``backward()`` and ``step()``, and then
    ``scheduler.step()`` when ``make_scheduler(optimizer)`` gave one (its learning rates
    are kept in ``lrs``). Computation is in ``dtype`` (float64 by default) on the CPU.
    The run stops early if the loss is not finite or the point leaves ``|x|, |y| <
    limit``.
    """
    positive_int("descend", "steps", steps, minimum=0)
    point = torch.as_tensor(start, dtype=dtype).detach().clone().reshape(2).requires_grad_(True)
    optimizer = make_optimizer([point])
    scheduler = make_scheduler(optimizer) if make_scheduler is not None else None
    points, losses, lrs = [point.detach().clone()], [], []
    diverged = False
    for _ in range(steps):
        loss = f(point)
        losses.append(loss.detach().clone())  # the loss at points[-1]
        if not torch.isfinite(loss) or point.detach().abs().max() >= limit:
            diverged = True
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            lrs.append(float(scheduler.get_last_lr()[0]))
            scheduler.step()
        points.append(point.detach().clone())
    else:
        with torch.no_grad():
            last = f(point)
        losses.append(last.detach().clone())
        diverged = not bool(torch.isfinite(last)) or bool(point.detach().abs().max() >= limit)
    return Trajectory(torch.stack(points), torch.stack(losses), diverged, lrs)


# --- Plots ------------------------------------------------------------------------------


def _figure_and_axes(
    ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.5)
) -> tuple[Figure, Axes]:
    if ax is not None:
        return cast("Figure", ax.figure), ax
    import matplotlib.pyplot as plt

    figure, new_ax = plt.subplots(figsize=figsize)
    return figure, new_ax


def _grid_values(
    f: Function2D, extent: Extent, resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_min, x_max, y_min, y_max = extent
    xs = torch.linspace(x_min, x_max, resolution, dtype=torch.float64)
    ys = torch.linspace(y_min, y_max, resolution, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        values = f(torch.stack([grid_x, grid_y], dim=-1))
    return grid_x.numpy(), grid_y.numpy(), to_numpy(values).astype(np.float64)


def _levels(values: np.ndarray, levels: int, log: bool) -> np.ndarray:
    finite = values[np.isfinite(values)]
    low, high = float(finite.min()), float(finite.max())
    if log:
        floor = max(low, high * 1e-6, 1e-12) if low <= 0 else low
        return np.geomspace(floor, high, levels) if high > floor else np.array([floor])
    return np.linspace(low, high, levels)


def _resolve_surface(
    f: Surface | Function2D, extent: Extent | None, log: bool | None
) -> tuple[Function2D, Extent, bool, tuple[tuple[float, float], ...]]:
    if isinstance(f, Surface):
        return f.f, extent or f.extent, f.log_levels if log is None else log, f.minima
    if extent is None:
        raise ValueError(
            "give the extent (x_min, x_max, y_min, y_max) to draw a plain function, or pass a "
            "Surface such as nncourse.optimviz.surface('rosenbrock'), which knows its own."
        )
    return f, extent, bool(log), ()


def plot_contours(
    f: Surface | Function2D,
    extent: Extent | None = None,
    ax: Axes | None = None,
    levels: int = 30,
    log: bool | None = None,
    resolution: int = 201,
    filled: bool = False,
) -> Figure:
    """Draw contour lines of a function of two parameters, with its minima marked.

    ``f`` is a :class:`Surface` (its extent, level spacing and minima are used unless
    given) or a function of points ``(..., 2)``, which needs ``extent`` =
    ``(x_min, x_max, y_min, y_max)``. ``log`` spaces the levels logarithmically,
    ``filled`` shades between them.
    """
    function, box, use_log, minima = _resolve_surface(f, extent, log)
    positive_int("plot_contours", "resolution", resolution, minimum=2)
    grid_x, grid_y, values = _grid_values(function, box, resolution)
    figure, ax = _figure_and_axes(ax)
    spaced = _levels(values, levels, use_log)
    if use_log:
        from matplotlib.colors import LogNorm

        norm = LogNorm(vmin=spaced[0], vmax=spaced[-1])
        clipped = np.clip(values, spaced[0], None)
    else:
        norm, clipped = None, values
    draw = ax.contourf if filled else ax.contour
    style = {"alpha": 0.6} if filled else {"alpha": 0.8, "linewidths": 0.8}
    draw(grid_x, grid_y, clipped, levels=spaced, cmap="viridis", norm=norm, **style)
    for x, y in minima:
        ax.plot(x, y, marker="*", color="black", markersize=12, linestyle="none")
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_xlabel("$\\theta_1$")
    ax.set_ylabel("$\\theta_2$")
    return figure


def plot_surface_3d(
    f: Surface | Function2D,
    extent: Extent | None = None,
    ax: Axes | None = None,
    resolution: int = 81,
    log: bool | None = None,
) -> Figure:
    """Draw a function of two parameters as a 3-D surface (``log`` plots ``log10(1 + f)``).

    ``ax`` must be a 3-D axes (``fig.add_subplot(projection="3d")``) when given.
    """
    function, box, use_log, _ = _resolve_surface(f, extent, log)
    grid_x, grid_y, values = _grid_values(function, box, resolution)
    if ax is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(6.5, 4.8))
        ax = figure.add_subplot(projection="3d")
    else:
        figure = cast("Figure", ax.figure)
        if getattr(ax, "name", "") != "3d":
            raise ValueError(
                "plot_surface_3d draws into a 3-D axes: create it with "
                "fig.add_subplot(projection='3d')."
            )
    heights = np.log10(1.0 + np.clip(values, 0, None)) if use_log else values
    ax.plot_surface(
        grid_x, grid_y, heights, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9
    )  # type: ignore[attr-defined]
    ax.set_xlabel("$\\theta_1$")
    ax.set_ylabel("$\\theta_2$")
    ax.set_zlabel("log10(1 + loss)" if use_log else "loss")  # type: ignore[attr-defined]
    return figure


def _points_of(
    path: Trajectory | torch.Tensor | np.ndarray | Sequence[Sequence[float]],
) -> np.ndarray:
    points = path.points if isinstance(path, Trajectory) else path
    array = to_numpy(points).astype(np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"a trajectory is a sequence of 2-D points, shape (k, 2); got shape {array.shape}."
        )
    return array


def plot_trajectories(
    f: Surface | Function2D,
    paths: Mapping[str, Trajectory | torch.Tensor | np.ndarray],
    extent: Extent | None = None,
    ax: Axes | None = None,
    log: bool | None = None,
    markers: bool = True,
) -> Figure:
    """Draw several optimiser trajectories on the contour lines of ``f``.

    ``paths`` maps a label (the optimiser and its settings) to a :class:`Trajectory` or
    a ``(k, 2)`` array of points, start first. Each starts with a circle and ends with a
    square; points outside the plot (a run that diverged) leave it at the edge.
    """
    figure = plot_contours(f, extent, ax=ax, log=log)
    ax = figure.axes[0] if ax is None else ax
    box = ax.get_xlim() + ax.get_ylim()
    for label, path in paths.items():
        points = _points_of(path)
        diverged = isinstance(path, Trajectory) and path.diverged
        shown = label + (" (diverged)" if diverged else "")
        marker = "." if markers else None
        (line,) = ax.plot(points[:, 0], points[:, 1], marker=marker, markersize=3, label=shown)
        ax.plot(points[0, 0], points[0, 1], "o", color=line.get_color(), markersize=6)
        ax.plot(points[-1, 0], points[-1, 1], "s", color=line.get_color(), markersize=6)
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    if paths:
        ax.legend(fontsize="small", loc="best")
    return figure


def plot_loss_curves(
    curves: Mapping[str, Sequence[float] | torch.Tensor | np.ndarray | Trajectory],
    ax: Axes | None = None,
    log: bool = True,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
) -> Figure:
    """Draw several loss curves on one axes, to compare runs (optimisers, learning rates).

    ``curves`` maps a label to a sequence of losses (or a :class:`Trajectory`). A curve
    that reaches infinity or NaN (a diverged run) is drawn up to its last finite value,
    which is marked with a cross and "diverged" in the legend. ``log`` uses a
    logarithmic loss axis (where every value is positive).
    """
    figure, ax = _figure_and_axes(ax)
    all_positive = True
    for label, values in curves.items():
        series = values.losses if isinstance(values, Trajectory) else values
        array = to_numpy(series).astype(np.float64).reshape(-1)
        finite = np.isfinite(array)
        cut = len(array) if finite.all() else int(np.argmin(finite))
        shown = array[:cut]
        diverged = cut < len(array) or (isinstance(values, Trajectory) and values.diverged)
        (line,) = ax.plot(
            np.arange(len(shown)), shown, label=label + (" (diverged)" if diverged else "")
        )
        if diverged and len(shown):
            ax.plot(len(shown) - 1, shown[-1], "x", color=line.get_color(), markersize=9, mew=2)
        if len(shown) and shown.min() <= 0:
            all_positive = False
    if log and all_positive:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if log and all_positive else ""))
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize="small", loc="best")
    return figure


# --- A network's loss along directions ---------------------------------------------------


def random_directions(model: nn.Module, count: int = 2, seed: int = 0) -> list[list[torch.Tensor]]:
    """Return ``count`` random directions in ``model``'s parameter space, filter-normalised.

    Each direction is a list with one tensor per parameter (in ``model.parameters()``
    order). Gaussian entries are rescaled so that each row of a weight matrix (one
    neuron's incoming weights, or one filter) has the norm of the same row of the model's
    weights; biases and other one-dimensional parameters get zero. Scale-invariant
    networks then look alike along every direction (Li et al., 2018).
    """
    positive_int("random_directions", "count", count)
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(count):
        direction = []
        for parameter in model.parameters():
            weights = parameter.detach()
            if weights.dim() <= 1:
                direction.append(torch.zeros_like(weights))
                continue
            noise = torch.randn(weights.shape, generator=generator, dtype=weights.dtype).to(
                weights.device
            )
            rows, noise_rows = weights.reshape(len(weights), -1), noise.reshape(len(noise), -1)
            scale = rows.norm(dim=1, keepdim=True) / (noise_rows.norm(dim=1, keepdim=True) + 1e-10)
            direction.append((noise_rows * scale).reshape(weights.shape))
        directions.append(direction)
    return directions


def _check_direction(model: nn.Module, direction: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    parameters = list(model.parameters())
    shapes_match = len(direction) == len(parameters) and all(
        d.shape == p.shape for d, p in zip(direction, parameters)
    )
    if not shapes_match:
        raise ValueError(
            "a direction has one tensor per model parameter, with the parameter's shape (as "
            "random_directions returns, or [b - a for a, b in zip(model_a.parameters(), "
            "model_b.parameters())])."
        )
    return [d.detach() for d in direction]


def _losses_at_offsets(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    offsets: Iterable[list[torch.Tensor]],
) -> np.ndarray:
    """The loss with the parameters at θ + offset, for each offset; θ and the mode restored."""
    parameters = list(model.parameters())
    saved = [p.detach().clone() for p in parameters]
    was_training = model.training
    model.eval()
    losses = []
    try:
        with torch.no_grad():
            for offset in offsets:
                for p, p0, dp in zip(parameters, saved, offset):
                    p.copy_(p0 + dp)
                losses.append(float(loss_fn(model(X), y)))
    finally:
        with torch.no_grad():
            for p, p0 in zip(parameters, saved):
                p.copy_(p0)
        model.train(was_training)
    values = np.asarray(losses, dtype=np.float64)
    return np.where(np.isnan(values), math.inf, values)


def loss_along(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    direction: Sequence[torch.Tensor],
    alphas: Iterable[float],
) -> np.ndarray:
    """The loss at ``θ + α·d`` for each ``α`` in ``alphas``; ``θ`` are the model's parameters.

    ``direction`` ``d`` is a list of tensors shaped like the parameters (from
    :func:`random_directions`, or the difference between two trained models: then
    ``α`` from 0 to 1 walks from one to the other). The model is evaluated in
    ``eval()`` mode without gradients; its weights and mode are restored afterwards.
    A NaN loss is returned as infinity.
    """
    d = _check_direction(model, direction)
    offsets = ([float(alpha) * t for t in d] for alpha in alphas)
    return _losses_at_offsets(model, loss_fn, X, y, offsets)


def loss_slice(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    directions: Sequence[Sequence[torch.Tensor]],
    span: float = 1.0,
    resolution: int = 21,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The loss on a plane through the model's parameters: ``θ + α·d1 + β·d2``.

    ``directions`` are two directions (from :func:`random_directions`); ``α`` and ``β``
    run over ``resolution`` values from ``-span`` to ``span``. Returns the grids
    ``(alpha, beta, loss)``, each ``(resolution, resolution)``, ready for
    ``ax.contour(alpha, beta, loss)``. The model's weights and mode are restored.
    """
    if len(directions) != 2:
        raise ValueError(f"loss_slice needs two directions (a plane); got {len(directions)}.")
    positive_int("loss_slice", "resolution", resolution, minimum=2)
    d1, d2 = (_check_direction(model, d) for d in directions)
    coords = np.linspace(-span, span, resolution)
    alpha, beta = np.meshgrid(coords, coords, indexing="xy")
    offsets = (
        [float(a) * t1 + float(b) * t2 for t1, t2 in zip(d1, d2)]
        for a, b in zip(alpha.ravel(), beta.ravel())
    )
    losses = _losses_at_offsets(model, loss_fn, X, y, offsets).reshape(alpha.shape)
    return alpha, beta, losses
