"""The course's own pretrained backbone: a small ResNet-style CNN trained offline.

Nothing can be downloaded in the classroom and torchvision is not installed, so
unit 12 cannot load an ImageNet ResNet-50. Instead the course pretrains a small
network of the same family itself and ships its weights with this package:

- :class:`TinyResNet`: a stem convolution, three residual stages (each a
  :class:`BasicBlock` with BatchNorm, the last two halving the image and doubling
  the channels), global average pooling to a 64-number feature vector, and a
  linear head ``fc``. The names follow torchvision's ResNets (``layer1`` ...
  ``fc``), so code written for it reads like code written for a ResNet-50.
- The **source task** of the shipped weights (``assets/tiny_resnet_glyphs.pt``):
  classifying the 64 glyphs of an invented alphabet (:func:`source_glyphs`: pen
  paths of three strokes, each image with its own rotation, scale, shift, stroke
  width, brightness and noise) on 32 x 32 grey-scale images, 96,000 seeded
  training images (held-out accuracy 0.998). The data are generated, always
  available offline, so ``course/pretrain/train_backbone.py`` reproduces the file
  exactly (its SHA-256 is ``WEIGHTS_SHA256``). Digits and letters, the course's
  target tasks, are *not* part of it.
- :func:`load_pretrained_backbone` builds the network, loads the weights
  (``torch.load(..., weights_only=True)``), optionally replaces the head for a new
  task and freezes the body; :func:`prepare_images` resizes and normalises images
  the way the pretraining did.
"""

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import positive_int

__all__ = [
    "BasicBlock",
    "TinyResNet",
    "SOURCE_CLASSES",
    "GLYPH_SEED",
    "glyph_prototypes",
    "source_glyphs",
    "INPUT_SIZE",
    "FEATURE_DIM",
    "NORMALISE_MEAN",
    "NORMALISE_STD",
    "WEIGHTS_FILE",
    "WEIGHTS_SHA256",
    "weights_path",
    "weights_sha256",
    "prepare_images",
    "load_pretrained_backbone",
    "freeze",
    "unfreeze",
    "count_trainable",
]

SOURCE_CLASSES = 64
"""Number of classes of the pretraining (source) task: 64 synthetic glyphs."""

GLYPH_SEED = 2024
"""Seed of the 64 glyph prototypes of :func:`source_glyphs`."""

INPUT_SIZE = 32
"""Side of the square grey-scale images the backbone was pretrained on."""

FEATURE_DIM = 64
"""Length of the feature vector :meth:`TinyResNet.features` returns."""

NORMALISE_MEAN = 0.13
NORMALISE_STD = 0.24
"""Pixel mean and standard deviation used to normalise inputs during pretraining
(rounded statistics of the source images); :func:`prepare_images` applies them."""

WEIGHTS_FILE = "tiny_resnet_glyphs.pt"
"""File name of the shipped weights in ``nncourse/assets``."""

WEIGHTS_SHA256 = "5d2ddfd944062109a0624a4e14aa60a22be7a3361630b4f34583e1ac4e340b2e"
"""SHA-256 of the shipped weights file, as written by ``course/pretrain/train_backbone.py``."""


def glyph_prototypes(classes: int = SOURCE_CLASSES, seed: int = GLYPH_SEED) -> np.ndarray:
    """The stroke skeletons of the source classes, shape ``(classes, 4, 2)``.

    Each class is a pen path of three strokes through four random points in
    ``[-0.65, 0.65]^2`` (x to the right, y downwards): a random "letter" of an
    invented alphabet.
    """
    positive_int("glyph_prototypes", "classes", classes, minimum=2)
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.65, 0.65, (classes, 4, 2))


def source_glyphs(
    n: int, seed: int, size: int = INPUT_SIZE, classes: int = SOURCE_CLASSES, noise: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of the pretraining task: seeded glyphs of an invented 64-letter alphabet.

    Image ``i`` draws the pen path of class ``y[i]`` (:func:`glyph_prototypes`) with
    its own random rotation (up to 25 degrees either way), scale (0.75 to 1.15),
    shift (up to 0.15 of the half side), stroke half-width (0.05 to 0.2 of the half
    side) and brightness (0.6 to 1), anti-aliased, plus Gaussian pixel noise of std
    ``noise``, clipped to [0, 1]. Returns ``X`` float32 ``(n, 1, size, size)`` in
    [0, 1] (not normalised) and ``y`` int64 ``(n,)``. Nothing is read from disk.
    """
    positive_int("source_glyphs", "n", n)
    positive_int("source_glyphs", "size", size, minimum=8)
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, n)
    points = glyph_prototypes(classes)[label]                         # (n, 4, 2)
    angle = rng.uniform(-25, 25, n) * np.pi / 180
    scale = rng.uniform(0.75, 1.15, n)
    rotation = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1),
                         np.stack([np.sin(angle), np.cos(angle)], -1)], -2)  # (n, 2, 2)
    points = np.einsum("nij,npj->npi", rotation, points) * scale[:, None, None]
    points = points + rng.uniform(-0.15, 0.15, (n, 1, 2))
    width = rng.uniform(0.05, 0.2, (n, 1))
    brightness = rng.uniform(0.6, 1.0, (n, 1))
    grid = np.linspace(-1.0, 1.0, size)
    pixels = np.stack(np.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)  # (size*size, 2)
    pixel = 2.0 / (size - 1)
    ink = np.zeros((n, size * size))
    for k in range(points.shape[1] - 1):
        a, b = points[:, k, None, :], points[:, k + 1, None, :]      # (n, 1, 2)
        ab = b - a
        t = np.clip(((pixels - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-9), 0.0, 1.0)
        distance = np.linalg.norm(pixels - a - t[..., None] * ab, axis=-1)
        ink = np.maximum(ink, np.clip((width - distance) / pixel + 0.5, 0.0, 1.0))
    images = ink * brightness + rng.normal(0.0, noise, ink.shape)
    images = np.clip(images, 0.0, 1.0).reshape(n, 1, size, size)
    return torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(label, dtype=torch.int64)


class BasicBlock(nn.Module):
    """A residual block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Both convolutions are 3 x 3 with padding 1 and no bias (BatchNorm has its own
    shift). With ``stride=2`` the first convolution halves the image; whenever the
    shape changes (stride or channels) the shortcut is a 1 x 1 convolution with the
    same stride followed by BatchNorm (a *projection*), otherwise it is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    """A small ResNet for 1 x 32 x 32 images: 81,552 parameters with 64 classes, 77,392 in the body.

    ``stem`` (conv 3 x 3, 16 channels, BatchNorm, ReLU, 32 x 32) → ``layer1``
    (16 channels, stride 2: 16 x 16) → ``layer2`` (32 channels, 8 x 8) → ``layer3``
    (64 channels, 4 x 4) → global average pooling → ``fc`` (a linear layer to
    ``num_classes`` logits). :meth:`features` returns the pooled 64-number vector,
    the input of ``fc``. Any input side that is a multiple of 8 works.
    """

    def __init__(self, num_classes: int = SOURCE_CLASSES, in_channels: int = 1) -> None:
        super().__init__()
        positive_int("TinyResNet", "num_classes", num_classes)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.layer1 = BasicBlock(16, 16, stride=2)
        self.layer2 = BasicBlock(16, 32, stride=2)
        self.layer3 = BasicBlock(32, FEATURE_DIM, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector, shape ``(N, 64)``, of images ``(N, 1, H, W)``."""
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(N, num_classes)``."""
        return self.fc(self.features(x))

    def body(self) -> list[nn.Module]:
        """The pretrained parts, in order from the input: ``stem``, ``layer1`` to ``layer3``."""
        return [self.stem, self.layer1, self.layer2, self.layer3]


def weights_path() -> Path:
    """The path of the shipped weights file inside the installed package."""
    return Path(str(resources.files("nncourse") / "assets" / WEIGHTS_FILE))


def weights_sha256(path: str | Path | None = None) -> str:
    """The SHA-256 (hex) of a weights file, by default the shipped one."""
    data = Path(path if path is not None else weights_path()).read_bytes()
    return hashlib.sha256(data).hexdigest()


def prepare_images(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Resize grey-scale images in [0, 1] to ``size`` x ``size`` and normalise them.

    ``images`` is ``(N, 1, H, W)`` (or ``(N, H, W)``); they are resized with
    bilinear interpolation when ``H, W`` differ from ``size`` and then normalised
    with the pretraining statistics: ``(x - NORMALISE_MEAN) / NORMALISE_STD``.
    Feed a pretrained network what it saw during pretraining.
    """
    positive_int("prepare_images", "size", size)
    x = images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(
            "prepare_images: expected grey-scale images (N, 1, H, W) or (N, H, W); "
            f"got {tuple(images.shape)}"
        )
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - NORMALISE_MEAN) / NORMALISE_STD


def freeze(modules: nn.Module | list[nn.Module], frozen: bool = True) -> None:
    """Set ``requires_grad = not frozen`` on every parameter of ``modules``.

    Freezing stops gradients (and so updates) for those parameters; it does not
    change BatchNorm's running statistics, which follow ``train()``/``eval()``.
    """
    parts = modules if isinstance(modules, list) else [modules]
    for module in parts:
        for parameter in module.parameters():
            parameter.requires_grad_(not frozen)


def unfreeze(modules: nn.Module | list[nn.Module]) -> None:
    """Undo :func:`freeze`: make every parameter of ``modules`` trainable again."""
    freeze(modules, frozen=False)


def count_trainable(model: nn.Module) -> int:
    """The number of parameter values that have ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_pretrained_backbone(
    num_classes: int | None = None,
    freeze_body: bool = False,
    path: str | Path | None = None,
    check_hash: bool = True,
) -> TinyResNet:
    """Return a :class:`TinyResNet` with the course's pretrained weights.

    - ``num_classes=None`` keeps the source head (eight shape logits); an integer
      replaces ``fc`` with a new, randomly initialised ``nn.Linear(64, num_classes)``
      (seed PyTorch first for a reproducible head).
    - ``freeze_body=True`` freezes ``stem`` and ``layer1``-``layer3`` (feature
      extraction); the head stays trainable.
    - ``path`` loads another weights file of the same architecture; the shipped
      file is checked against ``WEIGHTS_SHA256`` unless ``check_hash=False``.

    The weights are read with ``torch.load(..., weights_only=True)``, which loads
    tensors only and never runs code from the file. The model is returned in
    ``eval()`` mode on the CPU; call ``.train()`` and ``.to(device)`` as needed.
    """
    file = Path(path) if path is not None else weights_path()
    if not file.is_file():
        raise FileNotFoundError(
            f"load_pretrained_backbone: no weights at {file}. The shipped file is made by "
            "`python course/pretrain/train_backbone.py --out "
            f"course/nncourse/assets/{WEIGHTS_FILE}`."
        )
    if path is None and check_hash:
        found = weights_sha256(file)
        if found != WEIGHTS_SHA256:
            raise RuntimeError(
                f"load_pretrained_backbone: {file} has SHA-256 {found}, but the course recorded "
                f"{WEIGHTS_SHA256}; the file was changed or retrained without updating "
                "backbones.py."
            )
    model = TinyResNet(num_classes=SOURCE_CLASSES)
    state = torch.load(file, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    if num_classes is not None:
        positive_int("load_pretrained_backbone", "num_classes", num_classes)
        model.fc = nn.Linear(FEATURE_DIM, num_classes)
    if freeze_body:
        freeze(model.body())
    return model.eval()
