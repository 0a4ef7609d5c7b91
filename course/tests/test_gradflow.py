"""Test the layer traces, the dead and saturated shares, and the gradient-flow plots."""

import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from nncourse.gradflow import (
    LayerStats,
    dead_fraction,
    layer_stats,
    plot_layer_histograms,
    plot_layer_stats,
    saturated_fraction,
    trace_layers,
)


def _stack(activation: type[nn.Module] = nn.ReLU, depth: int = 3, width: int = 8) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, 3))


def test_dead_fraction_counts_units_that_never_fire() -> None:
    """Is a unit dead only when it is at or below the threshold for every example?"""
    activations = torch.tensor([[0.0, 1.0, 0.0, -0.5], [0.0, 0.0, 2.0, -0.1]])
    assert dead_fraction(activations) == pytest.approx(0.5)  # units 0 and 3
    assert dead_fraction(activations, threshold=1.5) == pytest.approx(0.75)


def test_dead_fraction_treats_channels_as_units() -> None:
    """Is each channel of an (N, C, H, W) batch one unit, pooled over positions?"""
    images = torch.zeros(2, 3, 4, 4)
    images[1, 2, 3, 3] = 1.0  # channel 2 fires once, channels 0 and 1 never
    assert dead_fraction(images) == pytest.approx(2 / 3)


def test_saturated_fraction_counts_values_near_either_bound() -> None:
    """Are values within the margin of the low or the high bound counted, others not?"""
    values = torch.tensor([-1.0, -0.995, 0.0, 0.5, 0.99, 1.0])
    assert saturated_fraction(values, -1.0, 1.0, margin=0.02) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="below"):
        saturated_fraction(values, 1.0, -1.0)


def test_trace_layers_keeps_each_activation_and_its_gradient() -> None:
    """Does each trace hold the layer's output and dL/d(output), as autograd computes them?"""
    model = _stack()
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    traces = trace_layers(model, x, y, F.cross_entropy)
    assert [t.name for t in traces] == ["1", "3", "5"]
    assert all(t.kind == "ReLU" for t in traces)

    # The reference: the same quantities with retain_grad.
    h = x
    outputs = []
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            h.retain_grad()
            outputs.append(h)
    F.cross_entropy(h, y).backward()
    for trace, output in zip(traces, outputs):
        assert torch.allclose(trace.activations, output.detach())
        assert trace.gradients is not None and output.grad is not None
        assert torch.allclose(trace.gradients, output.grad)


def test_trace_layers_without_a_loss_traces_activations_only_and_removes_its_hooks() -> None:
    """Without targets, are gradients None, no graph built, and the hooks gone afterwards?"""
    model = _stack(nn.Tanh)
    traces = trace_layers(model, torch.randn(4, 8))
    assert all(t.gradients is None for t in traces)
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_trace_layers_names_repeated_uses_of_one_module() -> None:
    """Is a module used twice traced twice, the second time with a #2 suffix?"""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 4)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.linear(self.act(x)))

    traces = trace_layers(Twice(), torch.randn(2, 4))
    assert [t.name for t in traces] == ["act", "act#2"]


def test_trace_layers_explains_models_without_activation_modules() -> None:
    """Does a model that only uses F.relu get an error that says what to do?"""
    with pytest.raises(ValueError, match="layer_types"):
        trace_layers(nn.Linear(3, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="both targets and loss_fn"):
        trace_layers(_stack(), torch.randn(2, 8), targets=torch.zeros(2, dtype=torch.long))


def test_trace_layers_can_watch_other_layer_types() -> None:
    """Can linear layers be traced instead of activations?"""
    traces = trace_layers(_stack(depth=2), torch.randn(3, 8), layer_types=(nn.Linear,))
    assert [t.kind for t in traces] == ["Linear"] * 3


def test_layer_stats_summarise_traces() -> None:
    """Do the stats give mean, std, dead share, saturation (tanh only) and gradient std?"""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(4))
    relu_stats = layer_stats(trace_layers(_stack(nn.ReLU), x, y, F.cross_entropy))
    tanh_stats = layer_stats(trace_layers(_stack(nn.Tanh), x))
    assert all(isinstance(s, LayerStats) for s in relu_stats)
    assert relu_stats[0].activation_mean > 0 and relu_stats[0].saturated_fraction is None
    assert relu_stats[0].gradient_std is not None and relu_stats[0].gradient_std > 0
    assert tanh_stats[0].saturated_fraction is not None and tanh_stats[0].gradient_std is None
    assert 0.0 <= relu_stats[-1].dead_fraction <= 1.0


def test_a_negative_bias_kills_relu_units() -> None:
    """Does a large negative bias make every unit of that layer dead?"""
    model = _stack()
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    stats = layer_stats(trace_layers(model, torch.randn(32, 8)))
    assert stats[1].dead_fraction == 1.0


def test_plots_return_figures_and_check_their_input() -> None:
    """Do both plots draw (with and without gradients) and refuse unknown fields?"""
    x = torch.randn(32, 8)
    y = torch.randint(0, 3, (32,))
    with_gradients = trace_layers(_stack(depth=10), x, y, F.cross_entropy)
    figure = plot_layer_histograms(with_gradients, max_layers=4, title="t")
    assert isinstance(figure, Figure) and len(figure.axes) == 8
    assert figure.axes[0].get_title().startswith("layer 1: ReLU")
    assert isinstance(plot_layer_histograms(trace_layers(_stack(), x)), Figure)
    runs = {"a": layer_stats(with_gradients), "b": layer_stats(with_gradients)}
    figure = plot_layer_stats(runs, field="gradient_std")
    assert figure.axes[0].get_yscale() == "log"
    assert plot_layer_stats(runs, field="dead_fraction").axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="field"):
        plot_layer_stats(runs, field="weight_std")
    with pytest.raises(ValueError, match="no traces"):
        plot_layer_histograms([])


def test_he_initialisation_keeps_relu_activations_steady_where_the_default_does_not() -> None:
    """Does the module show the unit's main point: He init keeps a deep ReLU stack's signal?"""

    def stack(std_of_fan_in: float) -> nn.Sequential:
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        for _ in range(20):
            linear = nn.Linear(64, 64)
            nn.init.normal_(linear.weight, 0.0, std_of_fan_in / math.sqrt(64))
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.ReLU()]
        return nn.Sequential(*layers)

    x = torch.randn(256, 64)
    he = layer_stats(trace_layers(stack(math.sqrt(2)), x))
    small = layer_stats(trace_layers(stack(math.sqrt(1 / 3)), x))
    assert 0.2 < he[-1].activation_std / he[0].activation_std < 5
    assert small[-1].activation_std / small[0].activation_std < 1e-6


def test_histograms_of_a_dead_network_say_all_zero() -> None:
    """Does a layer whose values are all 0 get one labelled bar instead of an empty panel?"""
    model = _stack(depth=2)
    with torch.no_grad():
        model[0].bias.fill_(-1e3)  # layer 1 dead for every input, so no gradient below layer 2
    traces = trace_layers(
        model, torch.randn(8, 8), torch.zeros(8, dtype=torch.long), F.cross_entropy
    )
    figure = plot_layer_histograms(traces)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "all 0" in texts
    assert figure.axes[0].get_title().endswith("dead 100%")


def test_histograms_of_bounded_activations_show_saturation_not_death() -> None:
    """Does a tanh panel report its saturated share (a tanh unit never dies)?"""
    model = _stack(nn.Tanh, depth=2)
    with torch.no_grad():
        model[0].weight.mul_(100.0)  # pushes the first tanh layer into its flat tails
    figure = plot_layer_histograms(trace_layers(model, torch.randn(64, 8)))
    first, second = (ax.get_title() for ax in figure.axes[:2])
    assert "saturated" in first and "dead" not in first
    assert int(first.rsplit(" ", 1)[1].rstrip("%")) > 50
    assert "saturated" in second
