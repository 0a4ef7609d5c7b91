"""Data loading for the data-pipeline and optimisation units: seeded loaders, timing, 1-D data.

- :func:`seeded_loader` builds a ``DataLoader`` whose batches, shuffling and worker seeds
  follow from one ``seed``, so that a run can be repeated exactly and its values recorded
  for the grader, with or without worker processes.
- :func:`seed_worker` is the ``worker_init_fn`` it uses (also for loaders of your own).
- :func:`time_loader` measures how fast a loader delivers batches, epoch by epoch, with
  worker start-up counted: the numbers are for people, never for ``record`` (they depend
  on the machine and on what else runs on it).
- :class:`SlowDataset` wraps a data set and adds a simulated cost per item: waiting
  (reading from a disk or a network) or computing (decoding an image), the two costs that
  worker processes hide differently.
- :class:`WorkerTraceDataset` says, for each item, which worker process produced it.
- :func:`make_regression_1d` makes seeded one-dimensional regression data, with outliers
  on request.

Imported as ``from nncourse.loaders import seeded_loader, ...``. Nothing here touches the
network.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ._validate import non_negative, one_of, positive_int

__all__ = [
    "REGRESSION_KINDS",
    "LoaderTiming",
    "SlowDataset",
    "WorkerTraceDataset",
    "make_regression_1d",
    "seed_worker",
    "seeded_loader",
    "time_loader",
]

REGRESSION_KINDS = ("linear", "sine", "cubic")
"""The target functions :func:`make_regression_1d` can draw from."""


def seed_worker(worker_id: int) -> None:
    """Seed Python's ``random`` and NumPy in a ``DataLoader`` worker from its torch seed.

    PyTorch gives each worker the torch seed ``base_seed + worker_id``, where
    ``base_seed`` is drawn from the loader's ``generator`` when an epoch starts. This
    function derives the seeds of ``random`` and ``numpy.random`` from that torch seed,
    so that augmentations written with any of the three libraries differ between
    workers and are the same on every run with the same ``generator`` seed (the recipe
    of PyTorch's reproducibility notes). Pass it as ``worker_init_fn=seed_worker``.
    """
    del worker_id  # the torch seed already includes it
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _default_context(num_workers: int) -> str | None:
    """``"fork"`` where workers are used and the platform has it, else the default.

    A data set defined in a notebook cannot be pickled into a process that starts from
    scratch ("spawn", "forkserver", the default from Python 3.14 on Linux); a forked
    worker inherits it. Linux notebooks therefore ask for "fork" explicitly.
    """
    if num_workers > 0 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return None


def seeded_loader(
    dataset: Dataset[Any],
    batch_size: int = 32,
    *,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = None,
    persistent_workers: bool = False,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    multiprocessing_context: str | None = None,
) -> DataLoader[Any]:
    """Return a ``DataLoader`` whose every random choice follows from ``seed``.

    The loader gets its own ``torch.Generator`` seeded with ``seed``: it orders the
    examples when ``shuffle`` is on and draws the workers' seeds at the start of each
    epoch, and :func:`seed_worker` seeds ``random`` and NumPy in each worker. Building
    the loader again with the same seed therefore repeats the same batches, epoch after
    epoch, and the same random augmentations, with ``num_workers=0`` or more (worker
    ``k`` prepares batches ``k``, ``k + num_workers``, ... in turn, and the loader hands
    them out in order). A ``sampler`` (e.g. ``WeightedRandomSampler``) replaces
    ``shuffle``; give it a generator of its own to make it repeatable too.

    ``pin_memory`` defaults to True exactly when a CUDA GPU is available: page-locked
    batches copy to the GPU faster (and asynchronously with ``.to(device,
    non_blocking=True)``); without a GPU pinning only costs time. ``prefetch_factor``
    (batches each worker prepares ahead) and ``persistent_workers`` (keep the workers
    between epochs) only apply with ``num_workers > 0``; ``prefetch_factor`` is ignored
    otherwise, and PyTorch's default (2) applies when it is None. Workers start with
    "fork" on Linux (see ``multiprocessing_context`` in ``DataLoader``), so that data
    sets defined in a notebook work in them.
    """
    positive_int("seeded_loader", "batch_size", batch_size)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(
            f"seeded_loader: num_workers must be a whole number >= 0, got {num_workers!r}. "
            "Use 0 to load in the notebook's own process."
        )
    if sampler is not None and shuffle:
        shuffle = False  # the sampler decides the order; DataLoader refuses both
    generator = torch.Generator().manual_seed(seed)
    options: dict[str, Any] = {}
    if num_workers > 0:
        options["persistent_workers"] = persistent_workers
        options["worker_init_fn"] = seed_worker
        options["multiprocessing_context"] = multiprocessing_context or _default_context(
            num_workers
        )
        if prefetch_factor is not None:
            options["prefetch_factor"] = positive_int(
                "seeded_loader", "prefetch_factor", prefetch_factor
            )
    if collate_fn is not None:
        options["collate_fn"] = collate_fn
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        generator=generator,
        **options,
    )


@dataclass(frozen=True)
class LoaderTiming:
    """How long one pass over a loader took.

    ``seconds`` is the whole pass, ``first_batch_seconds`` the wait for the first batch
    (worker start-up included), ``batches`` and ``items`` what was delivered.
    """

    batches: int
    items: int
    seconds: float
    first_batch_seconds: float

    @property
    def items_per_second(self) -> float:
        """Items delivered per second over the whole pass."""
        return self.items / self.seconds if self.seconds > 0 else float("inf")


def _batch_size(batch: Any) -> int:
    """The number of examples in a collated batch (a tensor, or a tuple/list/dict of them)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and batch:
        return _batch_size(batch[0])
    return 1


def time_loader(
    loader: DataLoader[Any],
    epochs: int = 1,
    consume: Callable[[Any], Any] | None = None,
) -> list[LoaderTiming]:
    """Iterate over ``loader`` for ``epochs`` passes and return one :class:`LoaderTiming` each.

    Each pass is timed from ``iter(loader)`` (where workers start, unless they persist)
    to its last batch. ``consume(batch)``, when given, runs on every batch inside the
    timing, standing in for the training step that the loader has to keep up with.
    Timings vary from run to run and from machine to machine: show them, compare them,
    do not record them for grading.
    """
    positive_int("time_loader", "epochs", epochs)
    timings = []
    for _ in range(epochs):
        started = time.perf_counter()
        first = None
        batches = items = 0
        for batch in loader:
            if first is None:
                first = time.perf_counter() - started
            if consume is not None:
                consume(batch)
            batches += 1
            items += _batch_size(batch)
        seconds = time.perf_counter() - started
        timings.append(
            LoaderTiming(batches, items, seconds, first if first is not None else seconds)
        )
    return timings


def _python_work(iterations: int) -> int:
    """A pure-Python loop of ``iterations`` steps: CPU time that holds the GIL, like decoding."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


class SlowDataset(Dataset[Any]):
    """A data set whose items cost time, as reading and decoding real files does.

    Item ``i`` is ``dataset[i]``, delivered after ``wait`` seconds of sleeping (a
    stand-in for a disk or network read: the process waits, the CPU is free) and
    ``work`` iterations of a pure-Python loop (a stand-in for decoding: the CPU is busy,
    roughly 30-80 ns per iteration). Worker processes overlap waiting even on one CPU
    core; they speed up work only when there are idle cores to run them.
    """

    def __init__(
        self, dataset: Sequence[Any] | Dataset[Any], wait: float = 0.0, work: int = 0
    ) -> None:
        self.dataset = dataset
        self.wait = non_negative("SlowDataset", "wait", wait)
        if isinstance(work, bool) or not isinstance(work, int) or work < 0:
            raise ValueError(f"SlowDataset: work must be a whole number >= 0, got {work!r}.")
        self.work = work

    def __len__(self) -> int:
        """The wrapped data set's length."""
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        """The wrapped item, after the simulated wait and work."""
        if self.wait:
            time.sleep(self.wait)
        if self.work:
            _python_work(self.work)
        return self.dataset[index]


class WorkerTraceDataset(Dataset[tuple[int, int]]):
    """``n`` items; item ``i`` is ``(i, id of the worker that loaded it)``, -1 in the main process.

    Batches of it show how a ``DataLoader`` shares the work between its workers.
    """

    def __init__(self, n: int) -> None:
        self.n = positive_int("WorkerTraceDataset", "n", n)

    def __len__(self) -> int:
        """The number of items."""
        return self.n

    def __getitem__(self, index: int) -> tuple[int, int]:
        """``(index, worker id)``; the worker id is -1 outside worker processes."""
        if not 0 <= index < self.n:
            raise IndexError(f"WorkerTraceDataset: index {index} out of range for {self.n} items")
        info = get_worker_info()
        return index, (info.id if info is not None else -1)


def _target(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "linear":
        return 0.8 * x + 0.5
    if kind == "sine":
        return np.sin(1.5 * x) + 0.3 * x
    return 0.1 * x**3 - 0.6 * x


def make_regression_1d(
    n: int = 200,
    kind: str = "sine",
    noise: float = 0.1,
    outliers: float = 0.0,
    seed: int = 0,
    low: float = -3.0,
    high: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded one-dimensional regression data: ``x`` uniform in [low, high], ``y = f(x) + noise``.

    ``kind`` chooses ``f``: ``"linear"`` (``0.8 x + 0.5``), ``"sine"``
    (``sin(1.5 x) + 0.3 x``) or ``"cubic"`` (``0.1 x**3 - 0.6 x``). ``noise`` is the
    standard deviation of Gaussian noise on ``y``. ``outliers`` is the fraction of
    points (rounded down) whose target is pushed *up* by 3 to 6: gross errors all on one
    side, which pull a squared-error fit and barely move an absolute-error one. Returns
    ``X`` and ``y``, float32 of shape ``(n, 1)`` each, in random order; the same
    arguments always give the same data.
    """
    positive_int("make_regression_1d", "n", n)
    one_of("make_regression_1d", "kind", kind, REGRESSION_KINDS)
    noise = non_negative("make_regression_1d", "noise", noise)
    if (
        isinstance(outliers, bool)
        or not isinstance(outliers, (int, float))
        or not 0 <= outliers <= 1
    ):
        raise ValueError(
            f"make_regression_1d: outliers is a fraction of the points, between 0 and 1; got "
            f"{outliers!r}."
        )
    if not low < high:
        raise ValueError(f"make_regression_1d: low must be below high; got low={low}, high={high}.")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, n)
    y = _target(kind, x) + rng.normal(0.0, noise, n)
    count = int(outliers * n)
    if count:
        chosen = rng.choice(n, count, replace=False)
        y[chosen] += rng.uniform(3.0, 6.0, count)
    return (
        torch.as_tensor(x[:, None], dtype=torch.float32),
        torch.as_tensor(y[:, None], dtype=torch.float32),
    )
