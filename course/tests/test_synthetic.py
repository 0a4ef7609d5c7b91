"""Synthetic images and sequences: shapes, value ranges, determinism, learnability."""

import pytest
import torch
from torch import nn

from nncourse.synthetic import SHAPE_NAMES, synthetic_images, synthetic_sequences


def test_images_have_the_documented_shape_range_and_labels() -> None:
    """Are images float32 (n, 1, size, size) in [0, 1] with labels below classes?"""
    X, y = synthetic_images(64, size=20, classes=5, seed=3)
    assert X.shape == (64, 1, 20, 20) and X.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert set(y.tolist()) == set(range(5))


def test_images_are_determined_by_the_seed() -> None:
    """Does the same seed give the same images?"""
    first, second = synthetic_images(8, seed=1), synthetic_images(8, seed=1)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], synthetic_images(8, seed=2)[0])


def test_every_shape_draws_something() -> None:
    """Does every class draw visible pixels when there is no noise?"""
    X, y = synthetic_images(200, classes=len(SHAPE_NAMES), noise=0.0)
    for label in range(len(SHAPE_NAMES)):
        assert (X[y == label].flatten(1) > 0).sum(dim=1).min() >= 10, SHAPE_NAMES[label]


def test_too_many_classes_says_how_many_there_are() -> None:
    """Does asking for more classes than shapes name the maximum?"""
    with pytest.raises(ValueError, match=f"classes can be at most {len(SHAPE_NAMES)}; got 9"):
        synthetic_images(10, classes=9)


def test_small_cnn_learns_the_shapes() -> None:
    """Does a small CNN tell four shapes apart (>90% on fresh images) in 150 steps?"""
    torch.manual_seed(0)
    X, y = synthetic_images(512, size=16, classes=4, seed=0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 4),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(150):
        batch = slice((step * 64) % 512, (step * 64) % 512 + 64)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
        optimizer.step()
    X_test, y_test = synthetic_images(256, size=16, classes=4, seed=1)
    with torch.no_grad():
        assert (model(X_test).argmax(dim=1) == y_test).float().mean() > 0.9


def test_sine_targets_continue_the_sequence() -> None:
    """With noise=0, is y the next value, as the sine's linear recurrence predicts it?"""
    X, y = synthetic_sequences(16, length=30, seed=0, noise=0.0)
    assert X.shape == (16, 30, 1) and y.shape == (16, 1)
    assert X.dtype == y.dtype == torch.float32
    x = X[:, :, 0].double()
    # A sine obeys x[t+1] = a x[t] - x[t-1] with a = 2 cos(omega); fit a per sequence.
    a = ((x[:, 2:] + x[:, :-2]) * x[:, 1:-1]).sum(1) / (x[:, 1:-1] ** 2).sum(1)
    predicted = a * x[:, -1] - x[:, -2]
    assert torch.allclose(predicted.float(), y[:, 0], atol=1e-4)


def test_sine_noise_perturbs_inputs_only() -> None:
    """Does noise change the inputs but leave the targets clean?"""
    clean_X, clean_y = synthetic_sequences(4, seed=5, noise=0.0)
    noisy_X, noisy_y = synthetic_sequences(4, seed=5, noise=0.1)
    assert torch.equal(clean_y, noisy_y)
    assert 0.05 < (noisy_X - clean_X).std() < 0.15


@pytest.mark.parametrize("kind", ["copy", "reverse"])
def test_token_tasks_return_long_tokens(kind: str) -> None:
    """Are copy/reverse tasks int64 tokens below vocab_size, with the matching target?"""
    X, y = synthetic_sequences(5, length=7, kind=kind, vocab_size=6)
    assert X.dtype == y.dtype == torch.int64
    assert X.shape == y.shape == (5, 7)
    assert 0 <= X.min() and X.max() < 6
    assert torch.equal(y, X if kind == "copy" else X.flip(1))


def test_unknown_kind_lists_the_kinds() -> None:
    """Does an unknown kind list the ones that exist?"""
    with pytest.raises(ValueError, match="'sine', 'copy', 'reverse'; got 'cosine'"):
        synthetic_sequences(3, kind="cosine")
