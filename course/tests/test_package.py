"""The package as installed: exports, version, type marker and docstrings."""

import inspect
import tomllib
from pathlib import Path

import pytest

import nncourse
from nncourse import checks, data, device, fastmode, plots, train

PUBLIC_MODULES = [checks, data, device, fastmode, plots, train]
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_every_exported_name_exists() -> None:
    """Does every name in nncourse.__all__ resolve?"""
    missing = [name for name in nncourse.__all__ if not hasattr(nncourse, name)]
    assert not missing


@pytest.mark.skipif(not PYPROJECT.is_file(), reason="pyproject.toml is not beside the tests")
def test_version_matches_pyproject() -> None:
    """Is __version__ the version pyproject.toml declares?"""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert nncourse.__version__ == declared


def test_package_is_marked_typed() -> None:
    """Does the package ship the py.typed marker?"""
    assert (Path(nncourse.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_public_functions_and_classes_have_docstrings(module: object) -> None:
    """Does every public function and class of each module have a docstring?"""
    undocumented = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__.startswith("nncourse")
        and not inspect.getdoc(value)
    ]
    assert not undocumented
