"""The IDX and CIFAR-10 batch readers, on files the tests write."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nncourse.fileformats import read_cifar_batch, read_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trips(
    tmp_path: Path, write_idx: Callable[..., Path], suffix: str, dtype: type
) -> None:
    """Does read_idx return what was written, for each element type, gzipped or not?"""
    offset = 0 if dtype is np.uint8 else -7  # signed types get negative values too
    array = (np.arange(24) + offset).reshape(2, 3, 4).astype(dtype)
    read = read_idx(write_idx(tmp_path / f"data-idx3{suffix}", array))
    assert read.shape == (2, 3, 4)
    assert read.dtype == np.dtype(dtype)
    assert np.array_equal(read, array)


def test_idx_rejects_other_files(tmp_path: Path) -> None:
    """Does a file that is not IDX fail naming the file and what an IDX file starts with?"""
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="is not an IDX file: it should start with two zero bytes"):
        read_idx(path)


def test_idx_rejects_truncated_files(tmp_path: Path, write_idx: Callable[..., Path]) -> None:
    """Does a truncated file fail saying how many bytes the header announced?"""
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(10, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"truncated or corrupt.*shape \(10,\).*holds 15 bytes"):
        read_idx(path)


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar_batch_round_trips(
    tmp_path: Path, write_cifar_batch: Callable[..., Path], bytes_keys: bool
) -> None:
    """Does read_cifar_batch return (N, 3, 32, 32) uint8 images and int64 labels?"""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5])
    path = write_cifar_batch(tmp_path / "data_batch_1", images, labels, bytes_keys=bytes_keys)
    read_images, read_labels = read_cifar_batch(path)
    assert read_images.dtype == np.uint8 and read_labels.dtype == np.int64
    assert np.array_equal(read_images, images)
    assert np.array_equal(read_labels, labels)


def test_cifar_batch_rejects_other_pickles(tmp_path: Path) -> None:
    """Does a pickle without data and labels fail naming the file and the keys found?"""
    import pickle

    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"test_batch has no 'data' and 'labels'.*\['images'\]"):
        read_cifar_batch(path)
