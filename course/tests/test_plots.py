"""Every plot returns a Figure, draws into a given ax, and explains bad input."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from nncourse.plots import (
    plot_attention,
    plot_confusion_matrix,
    plot_decision_boundary,
    plot_feature_maps,
    plot_filters,
    plot_gradient_flow,
    plot_history,
    plot_image_grid,
    plot_latent,
    plot_roc_pr,
)
from nncourse.toydata import make_moons
from nncourse.train import History


def test_history_plots_losses_and_metrics_in_two_panels() -> None:
    """Does a History with metrics give a loss panel and a metric panel, best epoch marked?"""
    history = History([1.0, 0.5, 0.4], [1.1, 0.7, 0.8], [0.5, 0.8, 0.9], [0.5, 0.7, 0.6],
                      epochs_run=3, best_epoch=2)  # fmt: skip
    figure = plot_history(history)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert any("best epoch 2" in text.get_text() for text in figure.axes[0].get_legend().texts)


def test_history_accepts_keras_style_dicts_and_an_ax() -> None:
    """Does a Keras-style dict draw into the given ax, metrics on a twin axis?"""
    figure, ax = plt.subplots()
    returned = plot_history({"loss": [1.0, 0.5], "val_loss": [1.2, 0.9], "accuracy": [0.6, 0.8]},
                            ax=ax)  # fmt: skip
    assert returned is figure and len(figure.axes) == 2
    with pytest.raises(TypeError, match="History that fit\\(\\) returns"):
        plot_history([1.0, 0.5])


def test_decision_boundary_accepts_models_and_functions() -> None:
    """Does it draw for a module, a binary-logit function and a probability threshold?"""
    X, y = make_moons(60)
    figure = plot_decision_boundary(nn.Linear(2, 2), X, y, resolution=30)
    assert isinstance(figure, Figure)
    plot_decision_boundary(lambda t: t[:, 0] - 0.5, X, y, resolution=30)
    plot_decision_boundary(lambda t: torch.sigmoid(t[:, :1]), X.numpy(), y.numpy(), resolution=30,
                           threshold=0.5)  # fmt: skip
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\), got \(60, 3\)"):
        plot_decision_boundary(nn.Linear(3, 2), torch.zeros(60, 3), y)


def test_gradient_flow_needs_gradients() -> None:
    """Does it plot after backward() and ask for backward() before?"""
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"Call loss\.backward\(\) first"):
        plot_gradient_flow(model.named_parameters())
    model(torch.randn(5, 2)).sum().backward()
    figure = plot_gradient_flow(model.named_parameters())
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()][0] == "0.weight"
    assert isinstance(plot_gradient_flow(model), Figure)


@pytest.mark.parametrize("shape", [(6, 3, 5, 5), (8, 1, 3, 3), (4, 5, 3, 3), (10, 64)])
def test_filters_draw_conv_and_linear_weights(shape: tuple[int, ...]) -> None:
    """Are colour, grey and linear (square-feature) weights drawn as a mosaic?"""
    figure = plot_filters(torch.randn(shape))
    assert isinstance(figure, Figure)
    assert figure.axes[0].get_title() == f"{shape[0]} filters"


def test_filters_explain_unusable_shapes() -> None:
    """Does a linear weight without a square number of features say what is accepted?"""
    with pytest.raises(ValueError, match=r"square number of features; got shape \(4, 10\)"):
        plot_filters(torch.randn(4, 10))


def test_latent_projects_high_dimensional_codes() -> None:
    """Are 2D codes drawn as is and 5D codes on principal components?"""
    labels = torch.arange(30) % 3
    assert plot_latent(torch.randn(30, 2), labels).axes[0].get_xlabel() == "$z_1$"
    figure = plot_latent(torch.randn(30, 5), labels)
    assert figure.axes[0].get_xlabel().startswith("PC 1")
    assert len(plot_latent(np.random.rand(30, 2), np.random.rand(30)).axes) == 2  # colour bar
    with pytest.raises(ValueError, match=r"d >= 2, got \(30,\)"):
        plot_latent(torch.randn(30))


def test_attention_map_with_token_labels() -> None:
    """Does a (1, 1, q, k) map draw with key and query labels, and wrong labels explain?"""
    weights = torch.softmax(torch.randn(1, 1, 3, 4), dim=-1)
    figure = plot_attention(weights, x_labels=list("abcd"), y_labels=list("xyz"))
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list("abcd")
    with pytest.raises(ValueError, match=r"weights\[0, 0\]"):
        plot_attention(torch.rand(2, 4, 3, 3))
    with pytest.raises(ValueError, match="3 x_labels for keys \\(columns\\), but there are 4"):
        plot_attention(weights, x_labels=list("abc"))


def test_confusion_matrix_counts_and_names() -> None:
    """Are cells counted with true classes as rows, and class names used as ticks?"""
    figure = plot_confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], labels=["cat", "dog", "fox"])
    cell_texts = [text.get_text() for text in figure.axes[0].texts]
    assert cell_texts == ["1", "0", "0", "0", "1", "1", "0", "0", "1"]
    assert figure.axes[0].get_title() == "accuracy 0.750"
    plot_confusion_matrix(torch.tensor([0, 1]), torch.tensor([1, 1]), normalize=True)
    with pytest.raises(ValueError, match="2 label names but class indices go up to 2"):
        plot_confusion_matrix([0, 1, 2], [0, 1, 2], labels=["a", "b"])


def test_roc_pr_draws_both_curves() -> None:
    """Does it draw ROC and precision-recall, into a given pair of axes too?"""
    truth = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    figure = plot_roc_pr(truth, torch.tensor(scores))
    assert [ax.get_title() for ax in figure.axes] == ["ROC", "precision-recall"]
    figure, axes = plt.subplots(1, 2)
    assert plot_roc_pr(truth, scores[:, None], ax=axes) is figure
    with pytest.raises(ValueError, match=r"probs\[:, 1\]"):
        plot_roc_pr(truth, np.random.rand(6, 2))
    with pytest.raises(ValueError, match="both classes"):
        plot_roc_pr(np.ones(6), scores)


def test_feature_maps_show_one_image_each_map_scaled() -> None:
    """Does a (1, C, H, W) activation give a mosaic of C maps, and a batch explain itself?"""
    maps = torch.zeros(1, 5, 6, 6)
    maps[0, 1, 2, 2] = 1e-6  # a weak map still shows its structure
    figure = plot_feature_maps(maps)
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (13, 20) and float(np.nanmax(image)) == 1.0
    assert "5 of 5" in figure.axes[0].get_title()
    assert "8 of 40" in plot_feature_maps(torch.rand(40, 4, 4), max_maps=8).axes[0].get_title()
    with pytest.raises(ValueError, match=r"activations\[0\]"):
        plot_feature_maps(torch.rand(2, 3, 4, 4))
    plt.close("all")


def test_image_grid_draws_rows_with_labels_and_clips() -> None:
    """Do originals and reconstructions make two labelled rows, colour images stay colour?"""
    originals, reconstructions = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8) * 2
    figure = plot_image_grid(
        torch.cat([originals, reconstructions]), ncols=4, row_labels=["input", "output"]
    )
    assert len(figure.axes) == 8 and figure.axes[4].get_ylabel() == "output"
    assert float(figure.axes[5].images[0].get_array().max()) <= 1.0
    colour = plot_image_grid(torch.rand(3, 3, 5, 5), titles=["a", "b", "c"])
    assert colour.axes[0].images[0].get_array().shape == (5, 5, 3)
    assert colour.axes[2].get_title() == "c"
    fig, ax = plt.subplots()
    assert plot_image_grid(torch.rand(6, 8, 8), ncols=3, ax=ax) is fig
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        plot_image_grid(torch.rand(3, 5, 5), titles=["a", "b"])
    with pytest.raises(ValueError, match="reshape"):
        plot_image_grid(torch.rand(3, 784))
    plt.close("all")
