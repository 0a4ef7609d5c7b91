"""Conversions between the array types students pass in (tensors, arrays, lists)."""

from typing import Any

import numpy as np
import torch


def to_numpy(values: Any) -> np.ndarray:
    """Return ``values`` as a NumPy array, detaching and moving tensors to the CPU."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def to_float64(values: Any) -> torch.Tensor:
    """Return ``values`` as a detached float64 CPU tensor."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64)
    # A copy: torch cannot wrap NumPy views with negative strides (``a[::-1]``).
    return torch.as_tensor(np.array(values, dtype=np.float64))


def labelled_points(
    points: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle points and labels together and return them as (float32, int64) tensors."""
    order = rng.permutation(len(labels))
    return (
        torch.as_tensor(points[order], dtype=torch.float32),
        torch.as_tensor(labels[order], dtype=torch.int64),
    )
