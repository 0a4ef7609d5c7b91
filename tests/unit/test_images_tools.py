"""Do the wheel and build tools find what is missing and notice every changed input?"""
import pytest

import build
import wheelhouse


def test_pins_are_read_and_unpinned_lines_are_refused(tmp_path):
    reqs = tmp_path / "r.txt"
    reqs.write_text("# comment\nTorch==2.13.0+cpu\nnumpy==2.4.6  # why\n")
    assert wheelhouse.read_pins(reqs) == {"torch": "2.13.0+cpu", "numpy": "2.4.6"}
    reqs.write_text("numpy>=2\n")
    with pytest.raises(SystemExit, match=r"r.txt:1: expected a pin"):
        wheelhouse.read_pins(reqs)


def test_only_wheels_not_yet_in_the_wheelhouse_are_missing(tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_text("")
    (tmp_path / "jupyter_server-2.21.1-py3-none-any.whl").write_text("")
    pins = {"torch": "2.13.0+cpu", "jupyter-server": "2.21.1", "numpy": "2.4.6"}
    assert wheelhouse.missing_pins(pins, tmp_path) == ["numpy==2.4.6"]
    assert wheelhouse.missing_pins({"torch": "2.13.0"}, tmp_path) == ["torch==2.13.0"]


def test_the_fingerprint_changes_with_content_names_arguments_and_base(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x")
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a-1-py3-none-any.whl").write_text("1234")
    files = build.context_files([("Dockerfile", tmp_path / "Dockerfile"), ("wheels", tmp_path / "w")])
    base = build.fingerprint(files, [], "sha256:1")
    assert build.fingerprint(files, [], "sha256:1") == base
    assert build.fingerprint(files, ["A=1"], "sha256:1") != base
    assert build.fingerprint(files, [], "sha256:2") != base
    (tmp_path / "Dockerfile").write_text("FROM y")
    assert build.fingerprint(files, [], "sha256:1") != base
