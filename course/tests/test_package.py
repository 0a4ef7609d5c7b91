"""The package as installed: exports, version, type marker and docstrings."""

import inspect
import tomllib
from pathlib import Path

import pytest

import nncourse
from nncourse import checks, data, device, fastmode, guards, plots, recording, train

PUBLIC_MODULES = [checks, data, device, fastmode, guards, plots, recording, train]
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


def test_import_leaves_matplotlib_and_pandas_until_they_are_used() -> None:
    """Does `import nncourse` stay light (every kernel pays for it), loading them on first use?"""
    import os
    import subprocess
    import sys

    probe = ("import sys, nncourse\n"
             "before = sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'pandas'})\n"
             "nncourse.churn_table(10)\n"
             "nncourse.plot_latent([[0.0, 1.0], [1.0, 0.0]])\n"
             "after = sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'pandas'})\n"
             "print(before, after)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[] ['matplotlib', 'pandas']"
