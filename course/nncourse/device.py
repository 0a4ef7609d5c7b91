"""Choosing a device, seeding every random generator, describing the hardware."""

import os
import platform
import random

import numpy as np
import torch

__all__ = [
    "describe_device",
    "get_device",
    "seed_everything",
]

_CUBLAS_WORKSPACE = ":4096:8"


def get_device(prefer: str = "auto") -> torch.device:
    """Return the device to compute on.

    ``prefer="auto"`` gives the first CUDA GPU when one is available and the CPU
    otherwise, so a notebook uses a GPU without code changes. ``"cpu"`` and
    ``"cuda"`` (or ``"cuda:1"``) force a choice; asking for CUDA on a machine
    without a usable GPU raises RuntimeError.
    """
    choice = str(prefer).strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"get_device({prefer!r}): CUDA was requested but no CUDA GPU is available "
                f"(torch {torch.__version__}). Use get_device('auto') to fall back to the CPU, "
                "or start a server with a GPU."
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"get_device({prefer!r}): this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), numbered from 0. Use 'cuda:0' or 'auto'."
            )
        return device
    raise ValueError(
        f"get_device: prefer must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {prefer!r}."
    )


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy, PyTorch and every CUDA device with ``seed``.

    With ``deterministic=True`` it also asks PyTorch for deterministic kernels
    (``torch.use_deterministic_algorithms(True, warn_only=True)``: operations
    without a deterministic version warn instead of failing), turns cuDNN
    autotuning off and sets ``CUBLAS_WORKSPACE_CONFIG`` as CUDA's matrix
    multiplications require. Deterministic kernels can be slower.
    ``deterministic=False`` leaves those settings as they are.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(
            f"seed_everything: seed must be an int between 0 and 2**32 - 1, got {seed!r}."
        )
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def describe_device(device: torch.device | str | None = None) -> str:
    """Return a one-line summary of the compute device, e.g. for a notebook's first cell.

    ``device`` defaults to :func:`get_device`'s automatic choice.
    """
    chosen = get_device() if device is None else torch.device(device)
    versions = f"torch {torch.__version__}, Python {platform.python_version()}"
    if chosen.type == "cuda":
        index = chosen.index if chosen.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        memory_gib = props.total_memory / 2**30
        return (
            f"cuda:{index} ({props.name}, {memory_gib:.1f} GiB, CUDA {torch.version.cuda}); "
            f"{versions}"
        )
    cuda_note = "CUDA available" if torch.cuda.is_available() else "no CUDA GPU"
    return (
        f"{chosen.type} ({platform.machine()}, {torch.get_num_threads()} threads, "
        f"{cuda_note}); {versions}"
    )
