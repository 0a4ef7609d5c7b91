"""Device choice, seeding and the device summary."""

import os
import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from nncourse.device import describe_device, get_device, seed_everything


@pytest.fixture
def restore_determinism(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo the global switches seed_everything(deterministic=True) flips."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def test_auto_picks_cuda_exactly_when_available() -> None:
    """Does 'auto' give CUDA when there is a GPU and the CPU otherwise?"""
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    assert get_device("AUTO").type == expected


def test_cpu_can_be_forced() -> None:
    """Does 'cpu' give the CPU whatever the hardware?"""
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_requesting_missing_cuda_explains_what_to_do() -> None:
    """Does asking for CUDA without a GPU fail with a message that suggests 'auto'?"""
    with pytest.raises(RuntimeError, match=r"no CUDA GPU is available.*get_device\('auto'\)"):
        get_device("cuda")


def test_unknown_device_names_the_choices() -> None:
    """Does a misspelt device name list the valid ones?"""
    with pytest.raises(ValueError, match=r"'auto', 'cpu', 'cuda'.*'gpu'"):
        get_device("gpu")


def test_seed_everything_repeats_every_generator() -> None:
    """Does the same seed give the same draws from random, NumPy and torch?"""

    def draws() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    seed_everything(123)
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first


def test_deterministic_mode_sets_torch_and_cublas(restore_determinism: None) -> None:
    """Does deterministic=True switch deterministic algorithms, cuDNN and cuBLAS settings?"""
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_bad_seed_is_explained() -> None:
    """Does a non-integer seed fail with the accepted range?"""
    with pytest.raises(ValueError, match="between 0 and 2\\*\\*32 - 1, got 1.5"):
        seed_everything(1.5)  # type: ignore[arg-type]


def test_describe_device_is_one_line() -> None:
    """Is the summary a single line naming the device and the torch version?"""
    summary = describe_device()
    assert "\n" not in summary
    assert torch.__version__ in summary
    assert describe_device("cpu").startswith("cpu (")
