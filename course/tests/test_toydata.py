"""The 2D generators: shapes, dtypes, determinism, and learnable classes."""

from collections.abc import Callable

import pytest
import torch
from torch import nn

from nncourse.toydata import make_blobs, make_circles, make_moons, make_spirals, make_xor

GENERATORS: dict[str, tuple[Callable[..., tuple[torch.Tensor, torch.Tensor]], int]] = {
    "moons": (make_moons, 2),
    "circles": (make_circles, 2),
    "blobs": (make_blobs, 3),
    "spirals": (make_spirals, 3),
    "xor": (make_xor, 2),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_returns_float_points_and_long_labels(name: str) -> None:
    """Does each generator return X float32 (n, 2) and y int64 (n,) with balanced classes?"""
    generate, classes = GENERATORS[name]
    X, y = generate(301, noise=0.1, seed=0)
    assert X.shape == (301, 2) and X.dtype == torch.float32
    assert y.shape == (301,) and y.dtype == torch.int64
    counts = torch.bincount(y, minlength=classes)
    assert len(counts) == classes
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_is_determined_by_its_seed(name: str) -> None:
    """Does the same seed give the same data, and another seed other data?"""
    generate, _ = GENERATORS[name]
    X1, y1 = generate(100, seed=7)
    X2, y2 = generate(100, seed=7)
    X3, _ = generate(100, seed=8)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert not torch.equal(X1, X3)


def test_points_are_shuffled() -> None:
    """Are the classes mixed, so that slicing off a validation set keeps both?"""
    _, y = make_moons(200, seed=0)
    assert 0 < y[:20].sum() < 20


def test_noise_free_circles_lie_on_their_radii() -> None:
    """With noise=0, is class 0 on the unit circle and class 1 on radius factor?"""
    X, y = make_circles(100, noise=0.0, factor=0.3)
    radii = X.norm(dim=1)
    assert torch.allclose(radii[y == 0], torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(radii[y == 1], torch.tensor(0.3), atol=1e-6)


def test_noise_free_xor_labels_follow_the_signs() -> None:
    """With noise=0, is the label 1 exactly where the coordinates' signs differ?"""
    X, y = make_xor(40, noise=0.0)
    assert torch.equal(y, (X[:, 0] * X[:, 1] < 0).long())


def test_blobs_accept_explicit_centres() -> None:
    """Are points drawn around the centres given, one class per centre?"""
    X, y = make_blobs(400, centers=[(10.0, 10.0), (-10.0, 0.0)], noise=0.5)
    assert torch.allclose(X[y == 0].mean(dim=0), torch.tensor([10.0, 10.0]), atol=0.2)
    assert torch.allclose(X[y == 1].mean(dim=0), torch.tensor([-10.0, 0.0]), atol=0.2)


def test_bad_arguments_say_what_was_passed() -> None:
    """Do a bad count, a negative noise and malformed centres name the argument and value?"""
    with pytest.raises(ValueError, match="make_moons: n must be a whole number >= 2, got -5"):
        make_moons(-5)
    with pytest.raises(ValueError, match="make_spirals: noise must be a number >= 0, got -0.1"):
        make_spirals(90, noise=-0.1)
    with pytest.raises(ValueError, match=r"list of \(x, y\) pairs.*shape \(3,\)"):
        make_blobs(10, centers=[1.0, 2.0, 3.0])  # type: ignore[list-item]


def test_tiny_mlp_learns_the_moons() -> None:
    """Does a small MLP reach more than 90% accuracy on moons within 300 steps?"""
    torch.manual_seed(0)
    X, y = make_moons(400, noise=0.15, seed=1)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(300):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
    X_test, y_test = make_moons(400, noise=0.15, seed=2)
    with torch.no_grad():
        test_accuracy = (model(X_test).argmax(dim=1) == y_test).float().mean().item()
    assert test_accuracy > 0.9
