"""Readers for the file formats MNIST and CIFAR-10 are distributed in.

Both readers take the path of one file and return NumPy arrays; errors name
the file and say what the reader expected to find in it.
"""

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# The third byte of an IDX file's magic number names its element type (big-endian).
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """Return the content of ``path``, decompressed if its name ends in ``.gz``."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as compressed:
            return compressed.read()
    return path.read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the format of the MNIST files), gzip-compressed or not.

    Returns an array with the file's shape and element type in native byte order.
    """
    path = Path(path)
    content = _read_bytes(path)
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: it should start with two zero bytes, a type code "
            f"and a dimension count, but starts with {content[:4].hex(' ') or 'nothing'}. "
            "Replace it with an original MNIST file (e.g. train-images-idx3-ubyte)."
        )
    dtype = _IDX_DTYPES[content[2]]
    ndim = content[3]
    header_size = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(content[4:header_size], dtype=">u4"))
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: its header announces shape {shape} "
            f"({expected} bytes in all) but the file holds {len(content)} bytes. "
            "Copy the file again from a good source."
        )
    data = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch of the python version of CIFAR-10 (e.g. ``data_batch_1``).

    Returns ``(images, labels)``: uint8 of shape ``(N, 3, 32, 32)`` and int64 of
    shape ``(N,)``. The batches are Python pickles, so only read files from a
    source you trust (the course data folder is filled by the operator).
    """
    path = Path(path)
    with open(path, "rb") as stream:
        try:
            batch = pickle.load(stream, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            raise ValueError(
                f"{path} is not a CIFAR-10 python batch ({error}). Replace it with the file "
                "of the same name from cifar-10-python.tar.gz."
            ) from error
    # Files written by Python 2 have bytes keys; ones written by Python 3 have str keys.
    entries = {
        key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()
    }
    if "data" not in entries or "labels" not in entries:
        raise ValueError(
            f"{path} has no 'data' and 'labels' entries (found {sorted(entries)}); it is not a "
            "CIFAR-10 python batch. Replace it with the file from cifar-10-python.tar.gz."
        )
    images = np.asarray(entries["data"], dtype=np.uint8)
    labels = np.asarray(entries["labels"], dtype=np.int64)
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or len(images) != len(labels):
        raise ValueError(
            f"{path}: expected 'data' of shape (N, 3072) and N labels, found {images.shape} "
            f"and {labels.shape}. Replace it with the file from cifar-10-python.tar.gz."
        )
    return images.reshape(-1, 3, 32, 32), labels
