"""Digits, MNIST and CIFAR-10 loaders: real files when present, a warned fallback otherwise."""

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from nncourse.imagesets import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    data_dir,
    load_cifar10,
    load_digits,
    load_mnist,
)


@pytest.fixture
def mnist_folder(tmp_path: Path, write_idx: Callable[..., Path]) -> Path:
    """A folder with gzipped training files and plain test files, 6 and 4 images."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, count, suffix in (("train", 6, ".gz"), ("t10k", 4, "")):
        images = (np.arange(count * 28 * 28) % 256).astype(np.uint8).reshape(count, 28, 28)
        images[:, 0, 0] = 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(count, dtype=np.uint8))
    return folder


@pytest.fixture
def cifar_folder(tmp_path: Path, write_cifar_batch: Callable[..., Path]) -> Path:
    """A cifar-10-batches-py folder whose five training batches hold 3 images each."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for index, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        images = np.full((3, 3, 32, 32), 10 * index, dtype=np.uint8)
        write_cifar_batch(folder / name, images, np.array([index, index, 9]))
    return folder


def test_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Is the data folder $NNCOURSE_DATA_DIR, and /srv/course-data without it?"""
    monkeypatch.setenv(DATA_DIR_ENV, "/somewhere/data")
    assert data_dir() == Path("/somewhere/data")
    monkeypatch.delenv(DATA_DIR_ENV)
    assert data_dir() == DEFAULT_DATA_DIR == Path("/srv/course-data")


def test_digits_are_scaled_images() -> None:
    """Are the digits float32 (1797, 1, 8, 8) in [0, 1] with ten int64 classes?"""
    X, y = load_digits()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert X.min() == 0.0 and X.max() == 1.0
    flat, labels = load_digits(as_tensors=False, flatten=True)
    assert isinstance(flat, np.ndarray) and flat.shape == (1797, 64)
    assert np.array_equal(labels, y.numpy())


def test_mnist_reads_the_idx_files(mnist_folder: Path) -> None:
    """Does load_mnist read gzipped and plain IDX files into scaled (N, 1, 28, 28) tensors?"""
    train = load_mnist(root=mnist_folder)
    assert not train.fallback
    X, y = train
    assert X.shape == (6, 1, 28, 28) and X.dtype == torch.float32
    assert y.tolist() == [0, 1, 2, 3, 4, 5] and y.dtype == torch.int64
    assert X[0, 0, 0, 0] == 1.0 and X[0, 0, 0, 1] == pytest.approx(1 / 255)
    test = load_mnist(train=False, root=mnist_folder, limit=3)
    assert test.X.shape == (3, 1, 28, 28) and test.y.tolist() == [0, 1, 2]


def test_mnist_defaults_to_the_data_folder(
    mnist_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Does load_mnist look in $NNCOURSE_DATA_DIR/mnist when no root is given?"""
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_folder.parent))
    assert not load_mnist(limit=2).fallback


def test_mnist_fallback_warns_and_keeps_shapes() -> None:
    """Without the files, does load_mnist warn with the folder and files, and fall back?"""
    with pytest.warns(UserWarning) as record:
        data = load_mnist()
    message = str(record[0].message)
    assert str(data_dir() / "mnist") in message
    assert "train-images-idx3-ubyte" in message and "operator copies" in message
    assert data.fallback and "digits" in data.source
    assert data.X.shape == (1437, 1, 28, 28) and data.X.dtype == torch.float32
    assert 0.0 <= data.X.min() and data.X.max() <= 1.0
    assert data.y.dtype == torch.int64 and set(data.y.tolist()) == set(range(10))
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte"):
        assert len(load_mnist(train=False, limit=50).y) == 50


def test_mnist_with_half_the_files_falls_back_naming_the_missing_one(mnist_folder: Path) -> None:
    """Does a missing labels file alone trigger the fallback, naming that file?"""
    (mnist_folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.warns(UserWarning, match=r"missing: train-labels-idx1-ubyte\)"):
        assert load_mnist(root=mnist_folder).fallback


def test_cifar_reads_only_the_batches_it_needs(cifar_folder: Path) -> None:
    """Does load_cifar10 read the pickled batches in order and stop at limit?"""
    X, y = load_cifar10(root=cifar_folder, limit=4)
    assert X.shape == (4, 3, 32, 32) and X.dtype == torch.float32
    assert y.tolist() == [0, 0, 9, 1]
    assert X[3].max().item() == pytest.approx(10 / 255)
    full = load_cifar10(root=cifar_folder)
    assert len(full.y) == 15 and not full.fallback
    assert load_cifar10(train=False, root=cifar_folder).y.tolist() == [5, 5, 9]


def test_cifar_fallback_warns_and_keeps_shapes() -> None:
    """Without the batches, does load_cifar10 warn and return 10-class colour images?"""
    with pytest.warns(UserWarning, match=r"cifar-10-batches-py \(missing: data_batch_1, .*"):
        data = load_cifar10(limit=400)
    assert data.fallback
    assert data.X.shape == (400, 3, 32, 32) and data.X.dtype == torch.float32
    assert 0.0 <= data.X.min() and data.X.max() <= 1.0
    assert set(data.y.tolist()) == set(range(10))
    with pytest.warns(UserWarning):
        assert len(load_cifar10(train=False).y) == 1000


def test_loaders_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Do the loaders and their fallbacks work with every socket connection refused?"""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("nncourse tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    load_digits()
    with pytest.warns(UserWarning):
        load_mnist(limit=10)
    with pytest.warns(UserWarning):
        load_cifar10(limit=10)


def test_bad_limit_is_explained(mnist_folder: Path) -> None:
    """Does limit=0 fail naming the argument?"""
    with pytest.raises(ValueError, match="load_mnist: limit must be a whole number >= 1, got 0"):
        load_mnist(root=mnist_folder, limit=0)


def test_image_set_survives_pickling(mnist_folder: Path) -> None:
    """Can a loader's result be pickled and copied, as DataLoader workers and deepcopy do?"""
    import copy
    import pickle

    data = load_mnist(root=mnist_folder, limit=2)
    for clone in (pickle.loads(pickle.dumps(data)), copy.deepcopy(data)):
        assert torch.equal(clone.X, data.X) and torch.equal(clone.y, data.y)
        assert clone.fallback is False and clone.source == data.source
