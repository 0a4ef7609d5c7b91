"""nncourse.record: the values a test cell shows the grading service."""
import math

import numpy as np
import pytest
import torch

from nncourse import RECORD_MIME, record
from nncourse.recording import encode


def test_tensors_arrays_numbers_and_text_encode_flat_with_their_shape():
    assert encode("t", torch.tensor([[1.0, 2.0]])) == {
        "name": "t", "tol": 1e-6, "dtype": "float", "shape": [1, 2], "values": [1.0, 2.0]}
    assert encode("a", np.arange(3))["dtype"] == "int"
    assert encode("b", True)["values"] == [True]
    assert encode("s", "relu")["dtype"] == "text"
    assert encode("x", 0.5, tol=1e-3)["tol"] == 1e-3


def test_non_finite_values_survive_json():
    assert encode("n", [math.nan, math.inf, -math.inf])["values"] == ["nan", "inf", "-inf"]


def test_unrecordable_values_say_what_to_record():
    with pytest.raises(TypeError, match="Record the numbers"):
        encode("m", {"a": 1})
    with pytest.raises(ValueError, match="non-empty string"):
        encode("", 1.0)


def test_record_shows_a_bundle_the_grader_reads(capsys):
    record("plain python", torch.ones(2))  # outside a kernel, display() prints the bundle
    out = capsys.readouterr().out
    assert RECORD_MIME in out and "plain python" in out
