"""Image data sets: scikit-learn's bundled digits, and MNIST and CIFAR-10 from the data folder.

The deployment fills a read-only data folder (``NNCOURSE_DATA_DIR``, by default
``/srv/course-data``). When the files a loader needs are not there, it warns,
naming the folder and the files, and returns a packaged fallback with the same
shapes and dtypes, so a notebook still runs offline.
"""

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, overload

import numpy as np
import torch
import torch.nn.functional as F

from ._validate import positive_int
from .fileformats import read_cifar_batch, read_idx
from .synthetic import synthetic_images

DATA_DIR_ENV = "NNCOURSE_DATA_DIR"
DEFAULT_DATA_DIR = Path("/srv/course-data")

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FILES = {
    True: tuple(f"data_batch_{i}" for i in range(1, 6)),
    False: ("test_batch",),
}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
"""Class names of the real CIFAR-10, in label order."""

_DIGITS_TRAIN_SHARE = 0.8
_CIFAR_FALLBACK_SIZE = {True: 5000, False: 1000}


class ImageSet(tuple[torch.Tensor, torch.Tensor]):
    """The ``(X, y)`` pair a loader returns, which also says where it came from.

    Unpack it like a tuple (``X, y = load_mnist()``) or keep it and read
    ``.X``, ``.y``, ``.fallback`` (True when the packaged stand-in was returned
    because the real files were missing) and ``.source`` (a short description).
    """

    fallback: bool
    source: str

    def __new__(
        cls, X: torch.Tensor, y: torch.Tensor, fallback: bool = False, source: str = ""
    ) -> "ImageSet":
        pair = super().__new__(cls, (X, y))
        pair.fallback = fallback
        pair.source = source
        return pair

    def __getnewargs__(self) -> tuple[torch.Tensor, torch.Tensor, bool, str]:
        """Let pickle and copy rebuild the pair (DataLoader workers pickle what they get)."""
        return self[0], self[1], self.fallback, self.source

    @property
    def X(self) -> torch.Tensor:
        """Images, float32 in [0, 1], shape ``(N, C, H, W)``."""
        return self[0]

    @property
    def y(self) -> torch.Tensor:
        """Class labels, int64, shape ``(N,)``."""
        return self[1]


def data_dir() -> Path:
    """Return the course data folder: ``$NNCOURSE_DATA_DIR``, or ``/srv/course-data``."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_DATA_DIR


@overload
def load_digits(
    as_tensors: Literal[True] = ..., flatten: bool = ...
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def load_digits(
    as_tensors: Literal[False], flatten: bool = ...
) -> tuple[np.ndarray, np.ndarray]: ...
def load_digits(
    as_tensors: bool = True, flatten: bool = False
) -> tuple[torch.Tensor, torch.Tensor] | tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's 1,797 hand-written 8x8 digits, scaled to [0, 1].

    ``X`` is float32 of shape ``(1797, 1, 8, 8)``, or ``(1797, 64)`` with
    ``flatten=True``; ``y`` is int64 digits 0-9. Tensors by default, NumPy
    arrays with ``as_tensors=False``. The data ship inside scikit-learn.
    """
    # Imported here: scikit-learn takes about a second to import and few notebooks need it.
    from sklearn.datasets import load_digits as load_bundled_digits

    digits = load_bundled_digits()
    images = (digits.images / 16.0).astype(np.float32)
    images = images.reshape(len(images), -1) if flatten else images[:, None, :, :]
    labels = digits.target.astype(np.int64)
    if as_tensors:
        return torch.from_numpy(images), torch.from_numpy(labels)
    return images, labels


def load_mnist(
    train: bool = True, root: str | Path | None = None, limit: int | None = None
) -> ImageSet:
    """Return MNIST as ``(X, y)``: float32 ``(N, 1, 28, 28)`` in [0, 1] and int64 labels.

    Reads the four original IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally gzipped) from ``root``, by default
    ``data_dir() / "mnist"``. ``train=False`` gives the 10,000 test images;
    ``limit`` keeps only the first ``limit`` examples.

    When the files are missing it warns and returns scikit-learn's digits
    upsampled to 28x28 (1,437 training or 360 test images, 10 classes); the
    result's ``.fallback`` is then True.
    """
    if limit is not None:
        positive_int("load_mnist", "limit", limit)
    folder = Path(root) if root is not None else data_dir() / "mnist"
    names = MNIST_FILES[bool(train)]
    found = [_find(folder, name, name + ".gz") for name in names]
    paths = [path for path in found if path is not None]
    if len(paths) < len(names):
        missing = [name for name, path in zip(names, found) if path is None]
        _warn_fallback(
            "MNIST",
            folder,
            missing,
            "scikit-learn's 8x8 digits upsampled to 28x28",
            "the four MNIST IDX files (gzipped or not)",
        )
        X, y = _digits_as_mnist(train)
        return ImageSet(X[:limit], y[:limit], fallback=True, source="fallback: upsampled digits")
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"MNIST files in {folder} do not match: images have shape {images.shape} and labels "
            f"{labels.shape}; expected (N, 28, 28) and (N,). Replace them with the original files."
        )
    X = torch.from_numpy(images[:limit].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels[:limit].astype(np.int64))
    return ImageSet(X, y, fallback=False, source=f"MNIST from {folder}")


def load_cifar10(
    train: bool = True, root: str | Path | None = None, limit: int | None = None
) -> ImageSet:
    """Return CIFAR-10 as ``(X, y)``: float32 ``(N, 3, 32, 32)`` in [0, 1] and int64 labels.

    Reads the python version's pickled batches (``data_batch_1`` to
    ``data_batch_5`` for training, ``test_batch`` for testing) from ``root``, by
    default ``data_dir() / "cifar-10-batches-py"``. ``limit`` keeps only the first
    ``limit`` examples (and reads only the batches needed). Class names are in
    ``CIFAR10_CLASSES``.

    When the files are missing it warns and returns synthetic colour images of
    shapes (5,000 training or 1,000 test images, 10 classes: five shapes, each
    on a warm or a cool palette; with ``limit``, only that many are drawn); the
    result's ``.fallback`` is then True.
    """
    if limit is not None:
        positive_int("load_cifar10", "limit", limit)
    folder = Path(root) if root is not None else data_dir() / "cifar-10-batches-py"
    names = CIFAR10_FILES[bool(train)]
    missing = [name for name in names if _find(folder, name) is None]
    if missing:
        _warn_fallback(
            "CIFAR-10",
            folder,
            missing,
            "synthetic colour images of shapes",
            "the six files of cifar-10-python.tar.gz's cifar-10-batches-py folder",
        )
        count = _CIFAR_FALLBACK_SIZE[bool(train)]
        X, y = _colour_shapes(count if limit is None else min(limit, count), seed=0 if train else 1)
        return ImageSet(X, y, fallback=True, source="fallback: synthetic colour shapes")
    image_parts, label_parts, total = [], [], 0
    for name in names:
        images, labels = read_cifar_batch(folder / name)
        image_parts.append(images)
        label_parts.append(labels)
        total += len(labels)
        if limit is not None and total >= limit:
            break
    images = np.concatenate(image_parts)[:limit]
    labels = np.concatenate(label_parts)[:limit]
    X = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ImageSet(X, torch.from_numpy(labels), fallback=False, source=f"CIFAR-10 from {folder}")


def _find(folder: Path, *candidates: str) -> Path | None:
    """Return the first of ``folder / candidate`` that is a file, or None."""
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _warn_fallback(
    dataset: str, folder: Path, missing: Sequence[str], stand_in: str, what_to_copy: str
) -> None:
    warnings.warn(
        f"{dataset} is not in {folder} (missing: {', '.join(missing)}), so this returns a "
        f"packaged stand-in instead: {stand_in}, with the same shapes and dtypes but fewer "
        f"and simpler images; results will differ from the real {dataset}. "
        f"To use the real data set, the operator copies {what_to_copy} into {folder}, or sets "
        f"{DATA_DIR_ENV} to a folder whose {folder.name}/ subfolder has them.",
        UserWarning,
        stacklevel=3,
    )


def _digits_as_mnist(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return scikit-learn's digits as MNIST-like 28x28 images (20x20 digits, 4-pixel border)."""
    X, y = load_digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    split = int(_DIGITS_TRAIN_SHARE * len(y))
    chosen = order[:split] if train else order[split:]
    digits = F.interpolate(X[chosen], size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(digits, (4, 4, 4, 4)).clamp_(0.0, 1.0), y[chosen]


def _colour_shapes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten classes of 3x32x32 colour images: five shapes, each on a warm or a cool palette."""
    shapes, shape_label = synthetic_images(n, size=32, classes=5, seed=seed, noise=0.0)
    generator = torch.Generator().manual_seed(seed)
    palette = torch.randint(0, 2, (n,), generator=generator)
    warm = torch.tensor([0.9, 0.45, 0.15])
    cool = torch.tensor([0.15, 0.45, 0.9])
    is_warm = palette[:, None] == 0
    colour_jitter = torch.randn(2, n, 3, generator=generator)
    foreground = torch.where(is_warm, warm, cool) + 0.15 * colour_jitter[0]
    background = torch.where(is_warm, cool, warm) * 0.4 + 0.1 * colour_jitter[1]
    mask = (shapes > 0).float()
    images = mask * foreground[:, :, None, None] + (1 - mask) * background[:, :, None, None]
    images += 0.05 * torch.randn(images.shape, generator=generator)
    return images.clamp_(0.0, 1.0), shape_label * 2 + palette
