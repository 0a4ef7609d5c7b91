"""Every data source of the course in one place; the code lives in one module per kind.

- 2D toy classification (:mod:`nncourse.toydata`): ``make_moons``,
  ``make_circles``, ``make_blobs``, ``make_spirals``, ``make_xor``.
- Synthetic images and sequences (:mod:`nncourse.synthetic`):
  ``synthetic_images``, ``synthetic_sequences``.
- A business table (:mod:`nncourse.churn`): ``churn_table``.
- Image data sets (:mod:`nncourse.imagesets`): ``load_digits`` (ships with
  scikit-learn), ``load_mnist`` and ``load_cifar10`` (from ``data_dir()``, with a
  packaged fallback and a warning when the files are missing).

Nothing here touches the network.
"""

from .churn import churn_table
from .imagesets import (
    CIFAR10_CLASSES,
    DATA_DIR_ENV,
    ImageSet,
    data_dir,
    load_cifar10,
    load_digits,
    load_mnist,
)
from .synthetic import SEQUENCE_KINDS, SHAPE_NAMES, synthetic_images, synthetic_sequences
from .toydata import make_blobs, make_circles, make_moons, make_spirals, make_xor

__all__ = [
    "CIFAR10_CLASSES",
    "DATA_DIR_ENV",
    "SEQUENCE_KINDS",
    "SHAPE_NAMES",
    "ImageSet",
    "churn_table",
    "data_dir",
    "load_cifar10",
    "load_digits",
    "load_mnist",
    "make_blobs",
    "make_circles",
    "make_moons",
    "make_spirals",
    "make_xor",
    "synthetic_images",
    "synthetic_sequences",
]
