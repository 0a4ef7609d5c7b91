"""Shared test set-up: a headless matplotlib, a clean environment, and data-file writers.

The writers produce the formats MNIST and CIFAR-10 are distributed in, so the
real readers are tested on real files without downloading anything.
"""

import gzip
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from nncourse.fastmode import FAST_MODE_ENV  # noqa: E402
from nncourse.imagesets import DATA_DIR_ENV  # noqa: E402

# The tests' tensors are tiny: one thread is faster than several, and far faster on a
# machine whose cores are busy with other work (thread hand-offs then stall).
torch.set_num_threads(1)

_IDX_TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def write_idx_file(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in .gz), as MNIST ships."""
    code = _IDX_TYPE_CODES[array.dtype.kind + str(array.dtype.itemsize)]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as stream:
            stream.write(content)
    else:
        path.write_bytes(content)
    return path


def write_cifar_batch_file(
    path: Path, images: np.ndarray, labels: np.ndarray, bytes_keys: bool = True
) -> Path:
    """Write a CIFAR-10 python batch: a pickled dict of (N, 3072) uint8 data and a label list.

    The original files were written by Python 2 and have bytes keys.
    """
    keys = (b"data", b"labels") if bytes_keys else ("data", "labels")
    batch = {keys[0]: images.reshape(len(images), -1), keys[1]: [int(v) for v in labels]}
    with open(path, "wb") as stream:
        pickle.dump(batch, stream)
    return path


@pytest.fixture
def write_idx() -> Callable[[Path, np.ndarray], Path]:
    """The IDX writer, for tests that need MNIST-format files."""
    return write_idx_file


@pytest.fixture
def write_cifar_batch() -> Callable[..., Path]:
    """The CIFAR-10 batch writer, for tests that need CIFAR-format files."""
    return write_cifar_batch_file


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Run each test outside fast mode, with an empty data folder, and close its figures."""
    monkeypatch.delenv(FAST_MODE_ENV, raising=False)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "empty-data-dir"))
    yield
    plt.close("all")
