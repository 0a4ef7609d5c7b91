"""Tests of nncourse.backbones: the architecture, the shipped weights and their loader."""

import hashlib
import io

import pytest
import torch
from torch import nn

from nncourse import backbones as bb


def test_shipped_file_matches_recorded_sha256_and_is_small() -> None:
    path = bb.weights_path()
    assert path.is_file(), path
    assert path.stat().st_size <= 2 * 1024 * 1024
    assert hashlib.sha256(path.read_bytes()).hexdigest() == bb.WEIGHTS_SHA256
    assert bb.weights_sha256() == bb.WEIGHTS_SHA256


def test_shipped_weights_match_the_architecture_exactly() -> None:
    state = torch.load(bb.weights_path(), map_location="cpu", weights_only=True)
    model = bb.TinyResNet()
    expected = model.state_dict()
    assert list(state) == list(expected)
    for name, tensor in state.items():
        assert tensor.shape == expected[name].shape, name
        assert tensor.dtype == expected[name].dtype, name
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name
    model.load_state_dict(state, strict=True)


def test_loader_returns_pretrained_model_in_eval_mode() -> None:
    model = bb.load_pretrained_backbone()
    assert isinstance(model, bb.TinyResNet)
    assert not model.training
    state = torch.load(bb.weights_path(), map_location="cpu", weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert model.fc.out_features == bb.SOURCE_CLASSES


def test_shapes_of_features_and_logits() -> None:
    model = bb.load_pretrained_backbone()
    x = torch.rand(3, 1, bb.INPUT_SIZE, bb.INPUT_SIZE)
    with torch.no_grad():
        assert model.features(x).shape == (3, bb.FEATURE_DIM)
        assert model(x).shape == (3, bb.SOURCE_CLASSES)
        assert model.stem(x).shape == (3, 16, 32, 32)
        assert model.layer1(model.stem(x)).shape == (3, 16, 16, 16)
        assert model(torch.rand(2, 1, 16, 16)).shape == (2, bb.SOURCE_CLASSES)


def test_pretrained_weights_solve_the_source_task() -> None:
    X, y = bb.source_glyphs(400, seed=12345)
    model = bb.load_pretrained_backbone()
    with torch.no_grad():
        accuracy = (model(bb.prepare_images(X)).argmax(1) == y).double().mean().item()
    assert accuracy > 0.95
    # a freshly initialised network is at chance
    torch.manual_seed(0)
    with torch.no_grad():
        fresh = (bb.TinyResNet().eval()(bb.prepare_images(X)).argmax(1) == y).double().mean().item()
    assert fresh < 0.2


def test_new_head_and_freezing() -> None:
    torch.manual_seed(0)
    model = bb.load_pretrained_backbone(num_classes=10, freeze_body=True)
    assert model.fc.out_features == 10
    assert all(not p.requires_grad for part in model.body() for p in part.parameters())
    assert all(p.requires_grad for p in model.fc.parameters())
    assert bb.count_trainable(model) == 64 * 10 + 10
    bb.unfreeze(model.body())
    assert bb.count_trainable(model) == sum(p.numel() for p in model.parameters())
    bb.freeze(model.layer1)
    assert not model.layer1.conv1.weight.requires_grad and model.layer2.conv1.weight.requires_grad


def test_hash_check_refuses_a_changed_file(tmp_path, monkeypatch) -> None:
    state = torch.load(bb.weights_path(), map_location="cpu", weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1.0
    other = tmp_path / bb.WEIGHTS_FILE
    buffer = io.BytesIO()
    torch.save(state, buffer)
    other.write_bytes(buffer.getvalue())
    # an explicit path loads without the check
    model = bb.load_pretrained_backbone(path=other)
    assert torch.equal(model.fc.bias, state["fc.bias"])
    monkeypatch.setattr(bb, "weights_path", lambda: other)
    with pytest.raises(RuntimeError, match="SHA-256"):
        bb.load_pretrained_backbone()
    with pytest.raises(FileNotFoundError):
        bb.load_pretrained_backbone(path=tmp_path / "missing.pt")


def test_source_glyphs_are_seeded_and_well_formed() -> None:
    X1, y1 = bb.source_glyphs(50, seed=3)
    X2, y2 = bb.source_glyphs(50, seed=3)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert X1.shape == (50, 1, 32, 32) and X1.dtype == torch.float32 and y1.dtype == torch.int64
    assert 0.0 <= X1.min() and X1.max() <= 1.0
    assert 0 <= y1.min() and y1.max() < bb.SOURCE_CLASSES
    assert bb.glyph_prototypes().shape == (bb.SOURCE_CLASSES, 4, 2)
    X3, _ = bb.source_glyphs(50, seed=4)
    assert not torch.equal(X1, X3)


def test_prepare_images_resizes_and_normalises() -> None:
    x = torch.full((2, 1, 8, 8), bb.NORMALISE_MEAN)
    out = bb.prepare_images(x)
    assert out.shape == (2, 1, 32, 32)
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)
    assert bb.prepare_images(torch.rand(2, 32, 32)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError):
        bb.prepare_images(torch.rand(2, 3, 32, 32))


def test_basic_block_shortcuts() -> None:
    same = bb.BasicBlock(8, 8)
    assert isinstance(same.shortcut, nn.Identity)
    down = bb.BasicBlock(8, 16, stride=2)
    assert isinstance(down.shortcut, nn.Sequential)
    assert down(torch.rand(2, 8, 10, 10)).shape == (2, 16, 5, 5)
