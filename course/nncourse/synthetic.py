"""Seeded synthetic images and sequences, learnable in seconds on a CPU."""

import numpy as np
import torch

from ._validate import non_negative, one_of, positive_int

SHAPE_NAMES = (
    "horizontal bar",
    "vertical bar",
    "disc",
    "square outline",
    "cross",
    "ring",
    "diagonal",
    "anti-diagonal",
)
"""Class names of :func:`synthetic_images`, in label order."""

SEQUENCE_KINDS = ("sine", "copy", "reverse")
"""Tasks :func:`synthetic_sequences` can make."""


def _shape_masks(
    label: np.ndarray, du: np.ndarray, dv: np.ndarray, size: np.ndarray, width: np.ndarray
) -> np.ndarray:
    """Return a boolean mask per image drawing the shape ``label`` names.

    ``du``/``dv`` are each pixel's offsets from the shape's centre, ``size`` its
    half extent and ``width`` its half stroke width, all broadcast per image.
    """
    radius = np.sqrt(du**2 + dv**2)
    inside_box = (np.abs(du) <= size) & (np.abs(dv) <= size)
    horizontal = (np.abs(dv) <= width) & (np.abs(du) <= size)
    vertical = (np.abs(du) <= width) & (np.abs(dv) <= size)
    masks = [
        horizontal,
        vertical,
        radius <= size,
        inside_box & (np.maximum(np.abs(du), np.abs(dv)) >= size - 2 * width),
        horizontal | vertical,
        np.abs(radius - size) <= width,
        inside_box & (np.abs(du - dv) / np.sqrt(2) <= width),
        inside_box & (np.abs(du + dv) / np.sqrt(2) <= width),
    ]
    return np.choose(label[:, None, None], masks)


def synthetic_images(
    n: int, size: int = 28, classes: int = 4, seed: int = 0, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey-scale images of simple shapes, one shape per class (see ``SHAPE_NAMES``).

    Each shape is drawn at a random position, size, stroke width and brightness,
    then Gaussian pixel noise of std ``noise`` is added and values are clipped to
    [0, 1]. Returns ``X`` float32 of shape ``(n, 1, size, size)`` and ``y`` int64
    of shape ``(n,)``. A small CNN tells the classes apart in a few hundred steps.
    """
    positive_int("synthetic_images", "n", n)
    positive_int("synthetic_images", "size", size, minimum=8)
    positive_int("synthetic_images", "classes", classes, minimum=2)
    noise = non_negative("synthetic_images", "noise", noise)
    if classes > len(SHAPE_NAMES):
        raise ValueError(
            f"synthetic_images: there are {len(SHAPE_NAMES)} shapes, so classes can be at most "
            f"{len(SHAPE_NAMES)}; got {classes}."
        )
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, n)
    per_image = (n, 1, 1)
    centre_u = rng.uniform(-0.25, 0.25, per_image)
    centre_v = rng.uniform(-0.25, 0.25, per_image)
    half_size = rng.uniform(0.4, 0.65, per_image)
    half_width = rng.uniform(1.0, 2.0, per_image) / size * 2
    brightness = rng.uniform(0.6, 1.0, per_image)
    grid = np.linspace(-1.0, 1.0, size)
    du = grid[None, None, :] - centre_u
    dv = grid[None, :, None] - centre_v
    mask = _shape_masks(label, du, dv, half_size, half_width)
    images = mask * brightness + rng.normal(0.0, noise, mask.shape)
    images = np.clip(images, 0.0, 1.0)[:, None, :, :]
    return (
        torch.as_tensor(images, dtype=torch.float32),
        torch.as_tensor(label, dtype=torch.int64),
    )


def synthetic_sequences(
    n: int,
    length: int = 50,
    seed: int = 0,
    kind: str = "sine",
    noise: float = 0.05,
    vocab_size: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences for recurrent and attention models.

    ``kind="sine"``: next-value prediction. Each sequence is a sine wave with
    random amplitude (0.5 to 1.5), period (8 to 25 steps) and phase, plus Gaussian
    noise of std ``noise``. Returns ``X`` float32 ``(n, length, 1)`` and ``y``
    float32 ``(n, 1)``, the noise-free value one step after the sequence ends.

    ``kind="copy"`` and ``kind="reverse"``: token tasks. ``X`` is int64
    ``(n, length)`` of random tokens in ``0 .. vocab_size - 1``; ``y`` is the same
    sequence (copy) or the sequence reversed (reverse), int64 ``(n, length)``.
    """
    positive_int("synthetic_sequences", "n", n)
    positive_int("synthetic_sequences", "length", length)
    one_of("synthetic_sequences", "kind", kind, SEQUENCE_KINDS)
    rng = np.random.default_rng(seed)
    if kind == "sine":
        noise = non_negative("synthetic_sequences", "noise", noise)
        amplitude = rng.uniform(0.5, 1.5, (n, 1))
        frequency = 1.0 / rng.uniform(8.0, 25.0, (n, 1))
        phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
        steps = np.arange(length + 1)[None, :]
        wave = amplitude * np.sin(2 * np.pi * frequency * steps + phase)
        inputs = wave[:, :length] + rng.normal(0.0, noise, (n, length))
        return (
            torch.as_tensor(inputs[:, :, None], dtype=torch.float32),
            torch.as_tensor(wave[:, length:], dtype=torch.float32),
        )
    positive_int("synthetic_sequences", "vocab_size", vocab_size, minimum=2)
    tokens = torch.as_tensor(rng.integers(0, vocab_size, (n, length)), dtype=torch.int64)
    target = tokens.clone() if kind == "copy" else tokens.flip(1)
    return tokens, target
