"""Test surfaces, trajectories, the comparison plots and a network's loss along directions."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from nncourse.optimviz import (
    SURFACES,
    Trajectory,
    descend,
    loss_along,
    loss_slice,
    plot_contours,
    plot_loss_curves,
    plot_surface_3d,
    plot_trajectories,
    random_directions,
    surface,
)


@pytest.mark.parametrize("name", SURFACES)
def test_listed_minima_are_stationary_points(name: str) -> None:
    """Is the gradient of each surface (numerically) zero at every minimum it lists?"""
    s = surface(name)
    for minimum in s.minima:
        point = torch.tensor(minimum, dtype=torch.float64, requires_grad=True)
        s(point).backward()
        assert point.grad.abs().max() < 1e-4, (name, minimum, point.grad)
    x_min, x_max, y_min, y_max = s.extent
    assert x_min < s.start[0] < x_max and y_min < s.start[1] < y_max


def test_two_wells_has_a_lower_and_a_higher_minimum() -> None:
    """Is the left well of two_wells the global minimum and the right one only local?"""
    s = surface("two_wells")
    left, right = (s(torch.tensor(m, dtype=torch.float64)) for m in s.minima)
    assert s.minima[0][0] < 0 < s.minima[1][0]
    assert left < right


def test_surface_names_are_checked() -> None:
    """Does an unknown surface name list the known ones?"""
    with pytest.raises(ValueError, match="rosenbrock"):
        surface("everest")


def test_descend_matches_a_hand_written_gradient_descent() -> None:
    """Does descend with torch.optim.SGD give the points of p <- p - lr * grad on the ravine?"""
    s = surface("ravine")
    path = descend(s, s.start, lambda params: torch.optim.SGD(params, lr=0.05), steps=5)
    p = torch.tensor(s.start, dtype=torch.float64)
    for k in range(1, 6):
        p = p - 0.05 * torch.tensor([1.0, 20.0], dtype=torch.float64) * p
        assert torch.allclose(path.points[k], p)
    assert len(path) == 6 and path.losses.shape == (6,) and not path.diverged
    assert torch.allclose(path.losses, s(path.points))


def test_descend_stops_a_diverging_run() -> None:
    """Does a learning rate beyond 2/curvature end early, flagged as diverged?"""
    s = surface("ravine")
    path = descend(s, s.start, lambda params: torch.optim.SGD(params, lr=0.2), steps=500, limit=1e3)
    assert path.diverged and len(path) < 501
    assert path.points[-1].abs().max() >= 1e3


def test_descend_keeps_the_scheduler_learning_rates() -> None:
    """Are the learning rates a scheduler sets kept, one per step?"""
    s = surface("ravine")
    path = descend(
        s,
        s.start,
        lambda params: torch.optim.SGD(params, lr=0.04),
        steps=4,
        make_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
    )
    assert path.lrs == pytest.approx([0.04, 0.04, 0.02, 0.02])


def test_descend_accepts_an_optimiser_of_ones_own() -> None:
    """Does any object with zero_grad() and step() work, as students' optimisers do?"""

    class Plain:
        def __init__(self, params, lr):
            self.params, self.lr = params, lr

        def zero_grad(self):
            for p in self.params:
                p.grad = None

        def step(self):
            with torch.no_grad():
                for p in self.params:
                    p -= self.lr * p.grad

    s = surface("ravine")
    mine = descend(s, s.start, lambda params: Plain(params, 0.05), steps=10)
    theirs = descend(s, s.start, lambda params: torch.optim.SGD(params, lr=0.05), steps=10)
    assert torch.allclose(mine.points, theirs.points)


def test_contours_trajectories_and_3d_surfaces_draw() -> None:
    """Do the surface plots return figures, draw into a given ax and mark diverged runs?"""
    s = surface("rosenbrock")
    assert isinstance(plot_contours(s), Figure)
    figure, ax = plt.subplots()
    good = descend(s, s.start, lambda p: torch.optim.Adam(p, lr=0.05), steps=20)
    bad = Trajectory(
        torch.tensor([[0.0, 0.0], [50.0, 50.0]]), torch.tensor([1.0, 1e9]), diverged=True
    )
    assert (
        plot_trajectories(s, {"Adam": good, "SGD": bad, "array": good.points.numpy()}, ax=ax)
        is figure
    )
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert labels == ["Adam", "SGD (diverged)", "array"]
    assert ax.get_xlim() == (-2.0, 2.0)
    assert isinstance(plot_surface_3d(s), Figure)
    with pytest.raises(ValueError, match="3-D axes"):
        plot_surface_3d(s, ax=ax)


def test_a_plain_function_needs_an_extent() -> None:
    """Does a function without a Surface ask for the extent, and draw with one?"""
    bowl = lambda p: (p**2).sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="extent"):
        plot_contours(bowl)
    assert isinstance(plot_contours(bowl, extent=(-1, 1, -1, 1), filled=True), Figure)
    with pytest.raises(ValueError, match=r"shape \(k, 2\)"):
        plot_trajectories(bowl, {"bad": np.zeros((3, 3))}, extent=(-1, 1, -1, 1))


def test_loss_curves_mark_divergence_and_choose_the_scale() -> None:
    """Is a curve that reaches NaN cut there and marked diverged, on a log axis if all positive?"""
    figure = plot_loss_curves({"ok": [1.0, 0.5, 0.25], "blows up": [1.0, 10.0, float("nan"), 5.0]})
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().texts] == ["ok", "blows up (diverged)"]
    assert len(ax.lines[1].get_xdata()) == 2
    linear = plot_loss_curves({"signed": [1.0, -0.5]}).axes[0]
    assert linear.get_yscale() == "linear"


def small_network() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    X = torch.randn(32, 2)
    return model, X, X[:, :1] * X[:, 1:]


def test_random_directions_are_filter_normalised() -> None:
    """Has each direction zero on biases and, row by row, the norm of the weights?"""
    model, _, _ = small_network()
    directions = random_directions(model, count=2, seed=1)
    assert len(directions) == 2
    for direction in directions:
        for d, p in zip(direction, model.parameters()):
            assert d.shape == p.shape
            if p.dim() == 1:
                assert not d.any()
            else:
                assert torch.allclose(d.norm(dim=1), p.detach().norm(dim=1), rtol=1e-5)
    assert not torch.equal(directions[0][0], directions[1][0])
    assert torch.equal(random_directions(model, 1, seed=1)[0][0], directions[0][0])


def test_loss_along_and_slice_leave_the_model_unchanged() -> None:
    """Is the loss at the centre the model's own, and are weights and mode restored?"""
    model, X, y = small_network()
    loss_fn = nn.MSELoss()
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        own = loss_fn(model(X), y).item()
    directions = random_directions(model, 2, seed=0)
    line = loss_along(model, loss_fn, X, y, directions[0], [-1.0, 0.0, 1.0])
    assert line.shape == (3,) and line[1] == pytest.approx(own)
    alpha, beta, grid = loss_slice(model, loss_fn, X, y, directions, span=0.5, resolution=5)
    assert alpha.shape == beta.shape == grid.shape == (5, 5)
    assert grid[2, 2] == pytest.approx(own)
    assert alpha[0, 0] == -0.5 and beta[4, 0] == 0.5
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model.training
    with pytest.raises(ValueError, match="one tensor per model parameter"):
        loss_along(model, loss_fn, X, y, directions[0][:2], [0.0])
    with pytest.raises(ValueError, match="two directions"):
        loss_slice(model, loss_fn, X, y, directions[:1])


def test_public_names_have_docstrings() -> None:
    """Does every public function and class of the module have a docstring?"""
    import inspect

    import nncourse.optimviz as module

    undocumented = [
        name
        for name in module.__all__
        if (inspect.isfunction(getattr(module, name)) or inspect.isclass(getattr(module, name)))
        and not inspect.getdoc(getattr(module, name))
    ]
    assert not undocumented
