"""Seeded loaders, worker tracing, loader timing, slow data sets and the 1-D regression data."""

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset, WeightedRandomSampler

from nncourse.loaders import (
    LoaderTiming,
    SlowDataset,
    WorkerTraceDataset,
    make_regression_1d,
    seed_worker,
    seeded_loader,
    time_loader,
)


class RandomItems(Dataset):
    """Item i is (i, a torch random number and a NumPy random number drawn when it is loaded)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int):
        import numpy as np

        return index, torch.rand(()), float(np.random.rand())


def batches(loader) -> list[list]:
    return [[t.tolist() for t in batch] for batch in loader]


def test_same_seed_gives_the_same_shuffled_batches() -> None:
    """Does building the loader again with the same seed repeat the batches, epoch by epoch?"""
    data = TensorDataset(torch.arange(20))
    first = seeded_loader(data, batch_size=6, seed=3)
    again = seeded_loader(data, batch_size=6, seed=3)
    assert [batches(first), batches(first)] == [batches(again), batches(again)]
    assert batches(first) != batches(seeded_loader(data, batch_size=6, seed=4))
    assert sorted(sum((b[0] for b in batches(first)), [])) == list(range(20))


def test_epochs_are_reshuffled() -> None:
    """Does each epoch of one loader visit the examples in a new order?"""
    loader = seeded_loader(TensorDataset(torch.arange(30)), batch_size=30, seed=0)
    assert batches(loader) != batches(loader)


def test_workers_deliver_the_same_batches_in_turn() -> None:
    """With two workers, are the batches those of the main process, worker k making batch k % 2?"""
    data = WorkerTraceDataset(14)
    in_process = seeded_loader(data, batch_size=4, seed=1)
    with_workers = seeded_loader(data, batch_size=4, seed=1, num_workers=2, prefetch_factor=3)
    plain = batches(in_process)
    traced = batches(with_workers)
    assert [b[0] for b in plain] == [b[0] for b in traced]
    assert all(set(b[1]) == {-1} for b in plain)
    assert [b[1][0] for b in traced] == [k % 2 for k in range(len(traced))]
    assert with_workers.prefetch_factor == 3 and with_workers.num_workers == 2


def test_random_draws_in_workers_repeat_with_the_seed() -> None:
    """Do torch and NumPy draws inside workers repeat with the same seed and change with another?"""

    def draws(seed: int) -> list:
        return batches(seeded_loader(RandomItems(), batch_size=3, seed=seed, num_workers=2))

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    values = [v for batch in draws(5) for v in batch[2]]
    assert len(set(values)) == len(values)  # NumPy is not in the same state in both workers


def test_seed_worker_seeds_numpy_and_random_from_torch() -> None:
    """Does seed_worker derive NumPy's and random's state from torch's initial seed?"""
    import random

    import numpy as np

    torch.manual_seed(123)
    seed_worker(0)
    first = (np.random.rand(), random.random())
    torch.manual_seed(123)
    seed_worker(1)
    assert (np.random.rand(), random.random()) == first


def test_defaults_and_bad_arguments() -> None:
    """Is memory pinned only with a GPU, and do bad sizes get a clear error?"""
    loader = seeded_loader(TensorDataset(torch.arange(4)), batch_size=2, prefetch_factor=4)
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.prefetch_factor is None  # no workers: nothing to prefetch
    with pytest.raises(ValueError, match="num_workers"):
        seeded_loader(TensorDataset(torch.arange(4)), num_workers=-1)
    with pytest.raises(ValueError, match="batch_size"):
        seeded_loader(TensorDataset(torch.arange(4)), batch_size=0)


def test_a_sampler_replaces_shuffling() -> None:
    """Does a weighted sampler decide the order, without DataLoader refusing shuffle=True?"""
    sampler = WeightedRandomSampler(
        [0.0, 0.0, 1.0], num_samples=6, generator=torch.Generator().manual_seed(0)
    )
    loader = seeded_loader(TensorDataset(torch.arange(3)), batch_size=6, sampler=sampler)
    assert batches(loader) == [[[2] * 6]]


def test_time_loader_counts_batches_and_items() -> None:
    """Does time_loader report each pass's batches, items and a positive time?"""
    loader = seeded_loader(TensorDataset(torch.arange(10), torch.arange(10)), batch_size=4)
    seen = []
    timings = time_loader(loader, epochs=2, consume=seen.append)
    assert len(timings) == 2 and len(seen) == 6
    assert all(isinstance(t, LoaderTiming) for t in timings)
    assert (timings[0].batches, timings[0].items) == (3, 10)
    assert timings[0].seconds >= timings[0].first_batch_seconds > 0
    assert timings[0].items_per_second > 0


def test_slow_dataset_waits_and_workers_overlap_the_waiting() -> None:
    """Does a waiting data set get faster with workers, and still return the wrapped items?

    The second epoch of persistent workers is compared, so that starting the workers (a
    fraction of a second on a busy machine) does not count; sleeping needs no CPU, so the
    comparison holds on a loaded machine too.
    """
    slow = SlowDataset(list(range(16)), wait=0.03)
    assert len(slow) == 16 and slow[3] == 3
    alone = time_loader(seeded_loader(slow, batch_size=4, shuffle=False))[0]
    shared = time_loader(
        seeded_loader(slow, batch_size=4, shuffle=False, num_workers=2, persistent_workers=True),
        epochs=2,
    )[1]
    assert alone.seconds >= 0.48
    assert shared.seconds < 0.8 * alone.seconds
    with pytest.raises(ValueError, match="work"):
        SlowDataset([1], work=-1)


def test_worker_trace_dataset_outside_workers() -> None:
    """Does the trace say -1 in the main process and refuse indices out of range?"""
    data = WorkerTraceDataset(3)
    assert data[2] == (2, -1)
    with pytest.raises(IndexError):
        data[3]


@pytest.mark.parametrize("kind", ["linear", "sine", "cubic"])
def test_regression_data_shapes_and_seed(kind: str) -> None:
    """Does each kind give float32 (n, 1) columns, the same for the same seed?"""
    X, y = make_regression_1d(50, kind=kind, seed=2)
    assert X.shape == y.shape == (50, 1) and X.dtype == y.dtype == torch.float32
    assert torch.equal(X, make_regression_1d(50, kind=kind, seed=2)[0])
    assert not torch.equal(X, make_regression_1d(50, kind=kind, seed=3)[0])
    assert -3 <= X.min() and X.max() <= 3


def test_regression_outliers_are_pushed_up() -> None:
    """Are exactly the requested share of targets pushed up by 3 to 6, the rest near the line?"""
    X, y = make_regression_1d(100, kind="linear", noise=0.0, outliers=0.1, seed=0)
    residual = (y - (0.8 * X + 0.5)).squeeze(1)
    pushed = residual > 1e-4
    assert int(pushed.sum()) == 10
    assert bool(((residual[pushed] >= 3) & (residual[pushed] <= 6)).all())
    assert residual[~pushed].abs().max() < 1e-5


def test_regression_rejects_bad_arguments() -> None:
    """Do a wrong kind, an outlier share above 1 and an empty range say what to pass?"""
    with pytest.raises(ValueError, match="kind"):
        make_regression_1d(10, kind="square")
    with pytest.raises(ValueError, match="fraction"):
        make_regression_1d(10, outliers=1.5)
    with pytest.raises(ValueError, match="low must be below high"):
        make_regression_1d(10, low=1.0, high=1.0)


def test_public_names_have_docstrings() -> None:
    """Does every public function and class of the module have a docstring?"""
    import inspect

    import nncourse.loaders as module

    undocumented = [
        name
        for name in module.__all__
        if (inspect.isfunction(getattr(module, name)) or inspect.isclass(getattr(module, name)))
        and not inspect.getdoc(getattr(module, name))
    ]
    assert not undocumented
