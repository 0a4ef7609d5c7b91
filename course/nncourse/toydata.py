"""Seeded two-dimensional classification data sets, small enough to plot.

Every generator returns ``(X, y)``: ``X`` a float32 tensor of shape ``(n, 2)``
and ``y`` an int64 tensor of shape ``(n,)`` with class indices 0, 1, ....
Points are shuffled, classes are as equal in size as ``n`` allows, and the
same ``seed`` always gives the same points.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._convert import labelled_points
from ._validate import non_negative, positive_int

Points = tuple[torch.Tensor, torch.Tensor]


def _class_sizes(n: int, classes: int) -> list[int]:
    """Split ``n`` points into ``classes`` counts that differ by at most one."""
    return [n // classes + (1 if k < n % classes else 0) for k in range(classes)]


def _labels(sizes: Sequence[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


def make_moons(n: int = 500, noise: float = 0.1, seed: int = 0) -> Points:
    """Two interleaving half circles; ``noise`` is the std of Gaussian jitter on each point."""
    positive_int("make_moons", "n", n, minimum=2)
    noise = non_negative("make_moons", "noise", noise)
    rng = np.random.default_rng(seed)
    upper, lower = _class_sizes(n, 2)
    t_upper = rng.uniform(0.0, math.pi, upper)
    t_lower = rng.uniform(0.0, math.pi, lower)
    points = np.concatenate(
        [
            np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1),
            np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1),
        ]
    )
    points += rng.normal(0.0, noise, points.shape)
    return labelled_points(points, _labels([upper, lower]), rng)


def make_circles(n: int = 500, noise: float = 0.05, seed: int = 0, factor: float = 0.5) -> Points:
    """A unit circle (class 0) around a smaller one of radius ``factor`` (class 1).

    ``noise`` is the std of Gaussian jitter added to each point.
    """
    positive_int("make_circles", "n", n, minimum=2)
    noise = non_negative("make_circles", "noise", noise)
    if not 0.0 < factor < 1.0:
        raise ValueError(
            f"make_circles: factor is the inner radius relative to the outer one and must be "
            f"between 0 and 1 (exclusive); got {factor!r}."
        )
    rng = np.random.default_rng(seed)
    sizes = _class_sizes(n, 2)
    angles = rng.uniform(0.0, 2 * math.pi, n)
    radii = np.repeat([1.0, factor], sizes)
    points = radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points += rng.normal(0.0, noise, points.shape)
    return labelled_points(points, _labels(sizes), rng)


def make_blobs(
    n: int = 500,
    centers: int | Sequence[tuple[float, float]] = 3,
    noise: float = 1.0,
    seed: int = 0,
) -> Points:
    """Gaussian clusters, one per class; ``noise`` is each cluster's standard deviation.

    ``centers`` is either a number of clusters, placed evenly on a circle of
    radius 4 around the origin, or a list of ``(x, y)`` centres.
    """
    positive_int("make_blobs", "n", n)
    noise = non_negative("make_blobs", "noise", noise)
    if isinstance(centers, int):
        count = positive_int("make_blobs", "centers", centers)
        angles = 2 * math.pi * np.arange(count) / count
        centre_points = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        centre_points = np.asarray(centers, dtype=np.float64)
        if centre_points.ndim != 2 or centre_points.shape[1] != 2 or len(centre_points) == 0:
            raise ValueError(
                "make_blobs: centers must be an int or a list of (x, y) pairs such as "
                f"[(0, 0), (3, 3)]; got an array of shape {centre_points.shape}."
            )
    rng = np.random.default_rng(seed)
    sizes = _class_sizes(n, len(centre_points))
    labels = _labels(sizes)
    points = centre_points[labels] + rng.normal(0.0, noise, (n, 2))
    return labelled_points(points, labels, rng)


def make_spirals(n: int = 600, classes: int = 3, noise: float = 0.2, seed: int = 0) -> Points:
    """Interleaved spiral arms, one per class (the CS231n spiral data set).

    ``noise`` is the std of Gaussian jitter added to each point's angle, in radians.
    """
    positive_int("make_spirals", "classes", classes, minimum=2)
    positive_int("make_spirals", "n", n, minimum=classes)
    noise = non_negative("make_spirals", "noise", noise)
    rng = np.random.default_rng(seed)
    sizes = _class_sizes(n, classes)
    arms = []
    for arm, size in enumerate(sizes):
        radius = np.linspace(0.0, 1.0, size)
        turn = 2 * math.pi / classes
        angle = np.linspace(arm * turn, arm * turn + 4.0, size) + rng.normal(0.0, noise, size)
        arms.append(radius[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1))
    return labelled_points(np.concatenate(arms), _labels(sizes), rng)


def make_xor(n: int = 400, noise: float = 0.3, seed: int = 0) -> Points:
    """Four clusters at (±1, ±1); class 1 where exactly one coordinate is negative.

    No straight line separates the classes. ``noise`` is each cluster's std.
    """
    positive_int("make_xor", "n", n, minimum=4)
    noise = non_negative("make_xor", "noise", noise)
    rng = np.random.default_rng(seed)
    corners = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    sizes = _class_sizes(n, 4)
    corner_index = _labels(sizes)
    points = corners[corner_index] + rng.normal(0.0, noise, (n, 2))
    labels = (corner_index >= 2).astype(np.int64)
    return labelled_points(points, labels, rng)
