"""Pretrain the course's backbone (nncourse.backbones.TinyResNet) and save its weights.

Run from the repository root:

    python course/pretrain/train_backbone.py --out course/nncourse/assets/tiny_resnet_glyphs.pt

What it does, deterministically (one CPU thread, fixed seeds, deterministic kernels):

- **Source task.** Classify the 64 glyphs of an invented alphabet
  (``nncourse.backbones.source_glyphs``: pen paths of three strokes, each drawn with its own
  rotation, scale, shift, stroke width and brightness) on 32 x 32 grey-scale images with pixel
  noise 0.15. Strokes, corners and their orientations are what digits and letters are made of,
  and what the network has to learn to tell 64 classes apart. The training images are drawn
  fresh for every epoch from seeded generators (``seed = 1000 + epoch``), so the network sees
  ``EPOCHS x IMAGES_PER_EPOCH`` distinct images; a held-out set (``seed = 999``) measures the
  source accuracy. These data need no files and no network, so anyone can rebuild the shipped
  weights bit for bit on the same software.
- **Training.** AdamW (learning rate 3e-3, weight decay 1e-4), batches of 128, a cosine
  schedule over all steps, inputs normalised with ``NORMALISE_MEAN``/``NORMALISE_STD``.
- **Output.** ``torch.save`` of the model's ``state_dict`` (float32, 347 KB) to ``--out``,
  and beside it a JSON file with the settings, the source accuracy, the time taken and the
  file's SHA-256 (copy it into ``WEIGHTS_SHA256`` in ``nncourse/backbones.py`` when you retrain).

It takes about two minutes of CPU time on one core (six to seven minutes of wall-clock time on
the course's shared, busy two-core build machine). ``--epochs`` and ``--images-per-epoch`` make
a quick smoke run (the result is then *not* the shipped file).
"""

import argparse
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the course folder, for an uninstalled nncourse

from nncourse.backbones import (  # noqa: E402
    GLYPH_SEED,
    INPUT_SIZE,
    NORMALISE_MEAN,
    NORMALISE_STD,
    SOURCE_CLASSES,
    TinyResNet,
    source_glyphs,
)

EPOCHS = 6
IMAGES_PER_EPOCH = 16_000
BATCH_SIZE = 128
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
NOISE = 0.15
MODEL_SEED = 0
HELD_OUT_SEED = 999
HELD_OUT_IMAGES = 2_000


def source_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` normalised source images ``(n, 1, 32, 32)`` and their shape labels."""
    X, y = source_glyphs(n, seed=seed, size=INPUT_SIZE, classes=SOURCE_CLASSES, noise=NOISE)
    return (X - NORMALISE_MEAN) / NORMALISE_STD, y


@torch.no_grad()
def accuracy(model: TinyResNet, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(X[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item()
                  for i in range(0, len(y), 500))
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="where to write the state_dict (.pt)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--images-per-epoch", type=int, default=IMAGES_PER_EPOCH)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(MODEL_SEED)
    model = TinyResNet(num_classes=SOURCE_CLASSES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(args.images_per_epoch / BATCH_SIZE)
    total_steps = args.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    X_held, y_held = source_images(HELD_OUT_IMAGES, HELD_OUT_SEED)
    shuffler = torch.Generator().manual_seed(MODEL_SEED)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        X, y = source_images(args.images_per_epoch, 1000 + epoch)
        order = torch.randperm(len(y), generator=shuffler)
        model.train()
        total = 0.0
        for i in range(0, len(y), BATCH_SIZE):
            batch = order[i:i + BATCH_SIZE]
            loss = F.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}/{args.epochs}: training loss {total / len(y):.4f}, "
              f"held-out accuracy {accuracy(model, X_held, y_held):.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start

    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().clone().contiguous()
             for name, tensor in model.state_dict().items()}
    # Saved through a buffer: torch.save names the archive's inner folder after the file it
    # writes to, so writing the bytes ourselves keeps the SHA-256 independent of --out.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    args.out.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    summary = {
        "file": args.out.name,
        "sha256": digest,
        "bytes": args.out.stat().st_size,
        "architecture": "nncourse.backbones.TinyResNet",
        "source_task": (f"nncourse.backbones.source_glyphs: {SOURCE_CLASSES} glyphs of an "
                        "invented alphabet "
                        f"(prototype seed {GLYPH_SEED}), {INPUT_SIZE}x{INPUT_SIZE}, noise {NOISE}"),
        "training_images": args.epochs * args.images_per_epoch,
        "epochs": args.epochs,
        "batch_size": BATCH_SIZE,
        "optimizer": f"AdamW(lr={LEARNING_RATE}, weight_decay={WEIGHT_DECAY}), cosine schedule",
        "held_out_accuracy": accuracy(model, X_held, y_held),
        "training_seconds": round(seconds, 1),
        "torch": torch.__version__,
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
