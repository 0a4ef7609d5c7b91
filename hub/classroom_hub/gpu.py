"""Which GPU a new server gets: the least used one, and never a busy one unless sharing is allowed."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class NoGPUAvailable(Exception):
    """Every GPU is taken and sharing is off."""


def choose_gpu(devices: Iterable[str], in_use: Iterable[str], sharing: bool) -> str:
    """Return the device id of the GPU to give to a new server.

    `devices` are the host's GPU ids (as `nvidia-smi` numbers them), `in_use`
    the ids held by running servers, one entry per server. Picks the least-used
    GPU, lowest id first. Without `sharing`, a GPU already in use is never picked.
    """
    devices = list(devices)
    if not devices:
        raise NoGPUAvailable("This classroom has no GPUs; choose the CPU profile.")
    counts = Counter(in_use)
    best = min(devices, key=lambda device: (counts[device], devices.index(device)))
    if counts[best] and not sharing:
        raise NoGPUAvailable(
            f"All {len(devices)} GPU(s) are in use by other students. Start the CPU profile now, "
            "or try the GPU again when someone's server stops.")
    return best
