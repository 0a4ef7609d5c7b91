"""Test the digit splits, the training loop's hooks, the weight helpers and the shifted images."""

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from nncourse.regularise import (
    digits_split,
    plot_weight_histograms,
    shift_images,
    train_classifier,
    weight_norms,
    weight_parameters,
)


def test_digits_split_is_seeded_and_disjoint() -> None:
    """Are the three parts disjoint, of the asked sizes, and the same for the same seed?"""
    first = digits_split(n_train=50, n_val=60, seed=3)
    again = digits_split(n_train=50, n_val=60, seed=3)
    X_train, _, X_val, _, X_test, _ = first
    assert X_train.shape == (50, 64) and X_val.shape == (60, 64) and len(X_test) == 1797 - 110
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    rows = {tuple(r.tolist()) for r in torch.cat([X_train, X_val, X_test])}
    assert len(rows) > 1700  # (a few digits are duplicates in the original data)
    assert digits_split(10, 10, flatten=False)[0].shape == (10, 1, 8, 8)
    with pytest.raises(ValueError, match="test set"):
        digits_split(n_train=1500, n_val=250)


def test_weight_parameters_leave_out_biases_and_vectors() -> None:
    """Are only the matrices and kernels chosen, not biases or normalisation scales?"""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    assert [name for name, _ in weight_parameters(model)] == ["0.weight", "3.weight"]
    norms = weight_norms(model)
    assert norms["3.weight"] == pytest.approx(model[3].weight.detach().norm().item(), rel=1e-6)


def test_shift_images_moves_content_by_whole_pixels_and_fills_zeros() -> None:
    """Is each image shifted by its own drawn offset, with zeros where nothing came in?"""
    images = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    generator = torch.Generator().manual_seed(0)
    shifts = torch.randint(-1, 2, (2, 2), generator=torch.Generator().manual_seed(0))
    moved = shift_images(images, 1, generator)
    for k in range(2):
        dy, dx = shifts[k].tolist()
        for r in range(4):
            for c in range(4):
                source_r, source_c = r - dy, c - dx
                inside = 0 <= source_r < 4 and 0 <= source_c < 4
                expected = images[k, 0, source_r, source_c] if inside else 0.0
                assert moved[k, 0, r, c] == expected


def test_shift_images_accepts_flat_digits_and_zero_shift() -> None:
    """Does a flat (N, 64) batch come back flat, and max_shift=0 change nothing?"""
    flat = torch.rand(5, 64)
    assert torch.equal(shift_images(flat, 0), flat)
    assert shift_images(flat, 2, torch.Generator().manual_seed(1)).shape == (5, 64)
    with pytest.raises(ValueError, match="square"):
        shift_images(torch.rand(2, 10), 1)
    with pytest.raises(ValueError, match="max_shift"):
        shift_images(flat, -1)


def _data() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=generator)
    y = (X[:, 0] > 0).long()
    return X[:40], y[:40], X[40:], y[40:]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))


def test_train_classifier_is_repeatable_and_records_each_epoch() -> None:
    """Do two runs with the same seed give the same curves, one entry per epoch?"""
    X, y, X_val, y_val = _data()
    runs = []
    for _ in range(2):
        model = _model()
        runs.append(
            train_classifier(
                model,
                X,
                y,
                torch.optim.SGD(model.parameters(), lr=0.1),
                5,
                X_val=X_val,
                y_val=y_val,
                batch_size=8,
                seed=4,
            )
        )
    assert runs[0] == runs[1]
    history = runs[0]
    assert len(history.train_loss) == len(history.val_metric) == 5 and history.epochs_run == 5
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.best_epoch == 1 + min(range(5), key=history.val_loss.__getitem__)


def test_train_classifier_evaluates_in_eval_mode_without_penalty() -> None:
    """Is train_loss the data loss of the whole set in eval mode, whatever the penalty?"""
    X, y, _, _ = _data()
    model = nn.Sequential(_model(), nn.Dropout(0.5))
    history = train_classifier(
        model,
        X,
        y,
        torch.optim.SGD(model.parameters(), lr=0.0),
        1,
        penalty=lambda m: torch.tensor(100.0),
    )
    assert model.training  # training ends in train() mode, as it ran
    model.eval()
    with torch.no_grad():
        assert history.train_loss[0] == pytest.approx(F.cross_entropy(model(X), y).item())


def test_train_classifier_applies_penalty_augmentation_and_callback() -> None:
    """Does a penalty shrink weights, augment see every batch, and a callback stop training?"""
    X, y, X_val, y_val = _data()
    plain, penalised = _model(), _model()
    train_classifier(plain, X, y, torch.optim.SGD(plain.parameters(), lr=0.1), 3, seed=1)
    train_classifier(
        penalised,
        X,
        y,
        torch.optim.SGD(penalised.parameters(), lr=0.1),
        3,
        seed=1,
        penalty=lambda m: 1.0 * sum((p**2).sum() for _, p in weight_parameters(m)),
    )
    assert sum(weight_norms(penalised).values()) < sum(weight_norms(plain).values())

    seen: list[int] = []

    def augment(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append(len(xb))
        return xb + 0.01 * torch.randn(xb.shape, generator=generator)

    model = _model()
    history = train_classifier(
        model,
        X,
        y,
        torch.optim.SGD(model.parameters(), lr=0.1),
        10,
        X_val=X_val,
        y_val=y_val,
        batch_size=16,
        augment=augment,
        callback=lambda epoch, h, m: epoch == 2,
    )
    assert history.epochs_run == 2 and history.stopped_early
    assert seen == [16, 16, 8] * 2


def test_train_classifier_reports_a_diverging_loss() -> None:
    """Does an infinite loss stop training with a message about the learning rate?"""
    X, y, _, _ = _data()
    model = _model()
    with pytest.raises(FloatingPointError, match="learning rate"):
        train_classifier(
            model,
            X,
            y,
            torch.optim.SGD(model.parameters(), lr=0.1),
            1,
            penalty=lambda m: torch.tensor(float("inf")),
        )


def test_plot_weight_histograms_draws_one_histogram_per_model() -> None:
    """Is there one labelled histogram per model, with its share of near-zero weights?"""
    sparse = _model()
    with torch.no_grad():
        sparse[0].weight[:, :2] = 0.0
    figure = plot_weight_histograms({"plain": _model(), "sparse": sparse})
    assert isinstance(figure, Figure)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("plain") and "within 1e-3 of 0" in labels[1]
    with pytest.raises(ValueError, match="empty"):
        plot_weight_histograms({})
