"""The experiment workflow of unit 10: run folders, YAML configs, checkpoints, logs, a loop.

- **Run folders.** :func:`runs_root` finds a writable place for runs (``./runs``, else the
  temporary folder, as in the grading sandbox where only ``/tmp`` is writable);
  :func:`create_run` makes one folder per run, and :class:`Run` names the files in it:
  ``config.yaml``, ``train.log``, ``metrics.csv``, ``summary.json``, ``checkpoints/`` and
  TensorBoard's event files.
- **Configs.** A config is a dataclass (the schema) filled from a YAML file:
  :func:`load_config` reads, applies command-line style overrides (``"optim.lr=0.01"``,
  as Hydra does) and validates, failing with the key's path and what was expected
  (:class:`ConfigError`); :func:`override` makes a changed copy (a sweep's points);
  :func:`save_config` and :func:`config_to_dict` write it back.
- **Checkpoints.** :func:`save_checkpoint` and :func:`load_checkpoint` keep and restore the
  model, optimizer, scheduler, epoch, every random generator (:func:`rng_state`,
  :func:`set_rng_state`) and a loader's shuffling generator, so that an interrupted run
  resumes exactly where it stopped.
- **Logging.** :func:`get_logger` (the ``logging`` module, to the console and to the run's
  ``train.log``), :class:`CSVLogger` and :class:`TensorBoardLogger` (scalars per epoch),
  :func:`run_loggers` (CSV always, TensorBoard's event files when the ``tensorboard``
  package is installed), :func:`read_metrics`, :func:`write_summary` and
  :func:`compare_runs` (one table of every run's config and results).
- **The loop.** :func:`train` trains with validation, metrics, a learning-rate scheduler,
  gradient clipping, callbacks (:class:`Callback`, :class:`EarlyStopping`,
  :class:`Checkpointer`) and logging hooks, and resumes from a checkpoint
  (``resume_from=``); it returns a :class:`TrainState`.

Imported as ``from nncourse.experiments import ...``. Nothing here touches the network.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import logging
import math
import os
import random
import re
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ._validate import positive_int
from .device import get_device

__all__ = [
    "CHECKPOINT_FORMAT",
    "RUNS_DIR_ENV",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "Checkpointer",
    "ConfigError",
    "EarlyStopping",
    "Run",
    "TensorBoardLogger",
    "TrainState",
    "compare_runs",
    "config_from_dict",
    "config_to_dict",
    "create_run",
    "get_logger",
    "load_checkpoint",
    "load_config",
    "override",
    "parse_overrides",
    "read_metrics",
    "rng_state",
    "run_loggers",
    "runs_root",
    "save_checkpoint",
    "save_config",
    "set_rng_state",
    "tensorboard_available",
    "train",
    "write_summary",
]

RUNS_DIR_ENV = "NNCOURSE_RUNS_DIR"
"""Environment variable that names the folder for run folders (it wins over ``./runs``)."""

CHECKPOINT_FORMAT = "nncourse-checkpoint-1"
"""The ``format`` entry of every checkpoint :func:`save_checkpoint` writes."""

C = TypeVar("C")
Metric = Callable[[torch.Tensor, torch.Tensor], float]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LogHook = Callable[[int, Mapping[str, float]], None]

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=,+-]{0,119}$")


# --------------------------------------------------------------------------- run folders


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (made if missing): tried, not guessed.

    Permission bits do not tell (root ignores them, a read-only file system does not),
    so this creates the folder and a probe file, and reports what happened.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def runs_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds run folders, created if needed, and writable.

    The first that applies: ``root`` when given; the folder named by the environment
    variable ``NNCOURSE_RUNS_DIR``; ``runs/`` in the current folder; ``nncourse-runs/``
    in the temporary folder (``/tmp``). The last is what a read-only machine such as the
    grading sandbox gets, where only ``/tmp`` is writable. An explicit ``root`` or
    ``NNCOURSE_RUNS_DIR`` that cannot be written to raises ``PermissionError``.
    """
    explicit = root if root is not None else os.environ.get(RUNS_DIR_ENV) or None
    if explicit is not None:
        folder = Path(explicit).expanduser()
        if not _writable(folder):
            source = "root" if root is not None else f"${RUNS_DIR_ENV}"
            raise PermissionError(
                f"runs_root: cannot create files in {folder} (from {source}). Pass a folder you "
                "can write to, or leave it out to use ./runs (or the temporary folder)."
            )
        return folder.resolve()
    for candidate in (Path.cwd() / "runs", Path(tempfile.gettempdir()) / "nncourse-runs"):
        if _writable(candidate):
            return candidate.resolve()
    raise PermissionError(
        f"runs_root: neither {Path.cwd() / 'runs'} nor the temporary folder "
        f"{tempfile.gettempdir()} is writable; set ${RUNS_DIR_ENV} to a folder you can write to."
    )


@dataclass(frozen=True)
class Run:
    """One run's folder and the files in it.

    ``path`` is the folder; the properties name the files the workflow writes there. A
    run's TensorBoard event files go in the folder itself, so that ``tensorboard
    --logdir <runs root>`` shows each run under its folder's name.
    """

    path: Path

    @property
    def name(self) -> str:
        """The run's name: its folder's name."""
        return self.path.name

    @property
    def config_file(self) -> Path:
        """``config.yaml``: the exact configuration the run used."""
        return self.path / "config.yaml"

    @property
    def log_file(self) -> Path:
        """``train.log``: what :func:`get_logger` writes."""
        return self.path / "train.log"

    @property
    def metrics_file(self) -> Path:
        """``metrics.csv``: one row of scalars per epoch (:class:`CSVLogger`)."""
        return self.path / "metrics.csv"

    @property
    def summary_file(self) -> Path:
        """``summary.json``: the run's final results (:func:`write_summary`)."""
        return self.path / "summary.json"

    @property
    def checkpoint_dir(self) -> Path:
        """``checkpoints/``: ``last.pt`` and ``best.pt`` (:class:`Checkpointer`)."""
        return self.path / "checkpoints"

    def __fspath__(self) -> str:
        return str(self.path)


def create_run(name: str, root: str | os.PathLike[str] | None = None, *, resume: bool = False) -> Run:
    """Create the folder of a new run called ``name`` under :func:`runs_root` and return it.

    A name is letters, digits and ``_ . = , + -`` (such as ``lr=0.01,seed=1``). When the
    folder exists already, a new run gets the first free ``name-2``, ``name-3``, ... so that
    nothing is overwritten; ``resume=True`` returns the existing folder instead (or creates
    it), to continue a run from its checkpoint.
    """
    if not isinstance(name, str) or not _RUN_NAME.match(name):
        raise ValueError(
            f"create_run: {name!r} is not a usable run name; use letters, digits and _ . = , + - "
            "(at most 120 characters, starting with a letter or digit), e.g. 'baseline' or 'lr=0.01'."
        )
    base = runs_root(root)
    path = base / name
    if not resume:
        number = 2
        while path.exists():
            path = base / f"{name}-{number}"
            number += 1
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    return Run(path)


# --------------------------------------------------------------------------- configs


class ConfigError(ValueError):
    """A configuration that does not fit its schema; the message names the key and the fix."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple, Sequence):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "values"
        return f"a list of {inner}"
    if origin in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _fail(path: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{path or 'the config'}: expected {expected}, got {value!r} ({type(value).__name__}).")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in that type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return config_from_dict(tp, value, where=path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, path)
            except ConfigError:
                continue
        raise _fail(path, _type_name(tp), value)
    if origin is typing.Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise _fail(path, _type_name(tp), value)
    if tp is type(None):
        if value is None:
            return None
        raise _fail(path, "null", value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(path, "true or false", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(path, "a whole number", value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 (PyYAML) reads 1e-3 as the *string* "1e-3": it wants 1.0e-3.
            try:
                return float(value)
            except ValueError:
                pass
        raise _fail(path, "a number", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(path, "text", value)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(path, _type_name(tp), value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _fail(path, f"a list of exactly {len(args)} values", value)
            items = [_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise _fail(path, "a mapping", value)
        key_type, value_type = args if args else (Any, Any)
        return {
            _coerce(k, key_type, f"{path}.{k}"): _coerce(v, value_type, f"{path}.{k}")
            for k, v in value.items()
        }
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _fail(path, tp.__name__, value)
    return value


def _schema_fields(schema: type) -> dict[str, tuple[Any, bool]]:
    """Each init field of a dataclass: its resolved annotation and whether it has a default."""
    try:
        hints = typing.get_type_hints(schema)
    except NameError as error:
        raise TypeError(
            f"config schema {schema.__name__}: an annotation names something undefined ({error}). "
            "Define the types it uses before the dataclass."
        ) from None
    result = {}
    for f in dataclasses.fields(schema):
        if f.init:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            result[f.name] = (hints.get(f.name, Any), has_default)
    return result


def config_from_dict(schema: type[C], data: Any, *, where: str = "") -> C:
    """Build the dataclass ``schema`` from a mapping (a parsed YAML file), checking everything.

    Every key must be a field of the schema (a misspelt key fails, with a suggestion);
    fields without a default must be present; each value must fit its annotation: ``int``,
    ``float`` (whole numbers and numeric text such as ``"1e-3"`` accepted), ``bool``,
    ``str``, ``Literal[...]`` (one of the listed values), ``X | None``, ``list[X]``,
    ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses (sub-mappings). The
    dataclass's own ``__post_init__`` can check ranges by raising ``ValueError``.
    Everything that does not fit raises :class:`ConfigError` naming the key's dotted path
    (``optim.lr``) and what was expected.
    """
    if not (dataclasses.is_dataclass(schema) and isinstance(schema, type)):
        raise TypeError(f"config_from_dict: the schema must be a dataclass type, not {schema!r}.")
    if not isinstance(data, Mapping):
        raise _fail(where, f"a mapping of {schema.__name__}'s fields", data)
    fields = _schema_fields(schema)
    prefix = f"{where}." if where else ""
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{prefix}{key}: unknown key.{hint} {schema.__name__} has: {', '.join(fields)}."
        )
    missing = [name for name, (_, has_default) in fields.items() if not has_default and name not in data]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: missing, and {schema.__name__} has no default for it.")
    values = {name: _coerce(data[name], fields[name][0], f"{prefix}{name}") for name in data}
    try:
        return schema(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where or schema.__name__}: {error}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain dicts, lists and numbers (tuples become lists), ready for YAML or JSON."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        if isinstance(config, Mapping):
            return json.loads(json.dumps(dict(config)))
        raise TypeError(f"config_to_dict: expected a dataclass instance, got {type(config).__name__}.")

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - the course images install PyYAML
        raise ImportError("YAML configs need PyYAML: pip install pyyaml") from None
    return yaml


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ``["optim.lr=0.01", "model.hidden=[64, 32]"]`` into a nested dict.

    Each item is ``dotted.key=value``; the value is read as YAML, so numbers, ``true``,
    ``null`` and lists come out typed (``"adam"`` stays text). This is the syntax of
    Hydra's command-line overrides.
    """
    yaml = _yaml()
    result: dict[str, Any] = {}
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r}: write it as dotted.key=value, e.g. optim.lr=0.01.")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: the key {key!r} has an empty part.")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({error}).") from None
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {part!r} is set to a value and used as a section.")
        target[parts[-1]] = value
    return result


def _merge(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _dotted_to_nested(changes: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        parts = str(key).split(".")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return nested


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    schema: type[C] | None = None,
    overrides: Iterable[str] = (),
) -> Any:
    """Read a YAML config file (or take a mapping), apply ``overrides``, validate against ``schema``.

    ``overrides`` are ``dotted.key=value`` strings (:func:`parse_overrides`), applied on top
    of the file. With a ``schema`` (a dataclass) the result is an instance of it, checked
    by :func:`config_from_dict`; without one, the merged dict. A missing file, a YAML
    syntax error, a file that is not a mapping or a value that does not fit raises
    :class:`ConfigError` saying where.
    """
    yaml = _yaml()
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "the config"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file (looked in {Path.cwd()}).")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: the file must hold a mapping of keys to values, not a {type(data).__name__}.")
    data = _merge(data, parse_overrides(overrides))
    if schema is None:
        return data
    return config_from_dict(schema, data)


def override(config: C, changes: Mapping[str, Any]) -> C:
    """A validated copy of the dataclass ``config`` with ``changes`` applied.

    ``changes`` maps dotted keys to values: ``override(cfg, {"optim.lr": 0.1,
    "model.dropout": 0.0})``. The copy is checked as :func:`load_config` checks a file, so
    a misspelt key fails. The original is left unchanged.
    """
    schema = type(config)
    merged = _merge(config_to_dict(config), _dotted_to_nested(changes))
    return config_from_dict(schema, merged)


def save_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write the config (a dataclass or a mapping) as YAML, keys in the schema's order."""
    yaml = _yaml()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None))
    return target


# --------------------------------------------------------------------------- random state


def rng_state() -> dict[str, Any]:
    """The state of every global random generator: Python's, NumPy's, PyTorch's and CUDA's.

    The result holds only tensors, numbers, text and tuples, so a checkpoint that contains
    it loads with ``torch.load(..., weights_only=True)``. :func:`set_rng_state` restores it.
    """
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position),
                  int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators from :func:`rng_state`'s result (CUDA's only where there is CUDA)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(torch.as_tensor(keys).cpu().numpy(), dtype=np.uint32),
                         int(position), int(has_gauss), float(cached)))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda_states])


# --------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read: the epoch, the step count and the ``extra`` entries."""

    path: Path
    epoch: int
    step: int
    extra: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    *,
    epoch: int,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> Path:
    """Save everything a run needs to continue exactly: one file, written atomically.

    The file holds the model's, optimizer's and scheduler's ``state_dict``s, ``epoch`` (the
    number of epochs completed), ``step`` (optimizer steps taken), the state of every
    global random generator (:func:`rng_state`), the states of ``generators`` (such as a
    ``DataLoader``'s shuffling generator, by name) and ``extra`` (a history, the config:
    dicts, lists, numbers, text and tensors only). It is written to a temporary file and
    renamed, so a run killed while saving leaves the previous checkpoint intact.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"save_checkpoint: epoch is the number of completed epochs (an int >= 0), got {epoch!r}.")
    content = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
        "extra": dict(extra or {}),
    }
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(content, temporary)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    *,
    generators: Mapping[str, torch.Generator] | None = None,
    restore_rng: bool = True,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load a checkpoint from :func:`save_checkpoint` into the given objects and return its facts.

    Each of ``model``, ``optimizer``, ``scheduler`` and ``generators`` given is restored
    from the file; ``restore_rng`` restores the global random generators as they were when
    it was saved (what an exact resume needs). The file is read with
    ``weights_only=True``: loading a checkpoint never runs code from it.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {source}.")
    content = torch.load(source, map_location=map_location, weights_only=True)
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"load_checkpoint: {source} is not a checkpoint written by save_checkpoint "
            f"(format {content.get('format') if isinstance(content, dict) else type(content).__name__!r}). "
            "A bare state_dict loads with model.load_state_dict(torch.load(path, weights_only=True))."
        )
    if model is not None:
        model.load_state_dict(content["model"])
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if content[name] is None:
                raise ValueError(f"load_checkpoint: {source} was saved without a {name}.")
            obj.load_state_dict(content[name])
    for name, generator in (generators or {}).items():
        if name not in content["generators"]:
            raise KeyError(f"load_checkpoint: {source} has no generator {name!r}; it has "
                           f"{sorted(content['generators']) or 'none'}.")
        generator.set_state(content["generators"][name].cpu())
    if restore_rng:
        set_rng_state(content["rng"])
    return Checkpoint(source, int(content["epoch"]), int(content["step"]), dict(content["extra"]))


# --------------------------------------------------------------------------- logging


def get_logger(run: Run | None = None, *, console: bool = True, level: int = logging.INFO) -> logging.Logger:
    """A ``logging`` logger for a run: lines to the notebook (stdout) and to ``train.log``.

    The file gets a time stamp and the level on every line; the console gets the message
    only. Calling it again for the same run replaces the handlers instead of adding more
    (each line would appear twice after a re-run cell otherwise). The logger does not
    pass its records on to the root logger.
    """
    name = "nncourse.run" + (f".{run.name}" if run is not None else "")
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = False
    if run is not None:
        run.path.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(run.log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
        logger.addHandler(to_file)
    if console:
        # stdout, not stderr: in a notebook, stderr looks like an error (and fails a test cell)
        to_console = logging.StreamHandler(sys.stdout)
        to_console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(to_console)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


class CSVLogger:
    """Log scalars per epoch to a CSV file: ``logger(epoch, {"train_loss": ..., ...})``.

    Columns are the union of the names logged so far. A row for an epoch that is already
    in the file replaces it and every later row, so a run resumed from a checkpoint
    rewrites the epochs it repeats instead of duplicating them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            with self.path.open(newline="") as stream:
                self.rows = [dict(row) for row in csv.DictReader(stream)]

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Add (or replace) the row of ``epoch`` and rewrite the file."""
        self.rows = [row for row in self.rows if int(float(row["epoch"])) < epoch]
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in metrics.items()}})
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(temporary, self.path)

    def close(self) -> None:
        """Nothing to release (every call writes the whole file); here for symmetry."""


def _summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, imported without importing TensorFlow.

    TensorBoard uses TensorFlow when it is installed (the course images have it), and
    importing it costs seconds and prints C++ log lines on stderr. A module named
    ``tensorboard.compat.notf`` tells TensorBoard to use its own minimal stand-in (the
    switch its ``no_tensorflow`` build uses); it is set only when TensorFlow is not
    loaded already. Raises ``ImportError`` without the ``tensorboard`` package.
    """
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` works here (it needs the ``tensorboard`` package)."""
    try:
        _summary_writer_class()
    except ImportError:
        return False
    return True


def _tensorboard_tag(name: str) -> str:
    """``train_loss`` -> ``loss/train``: TensorBoard groups the charts by the part before '/'."""
    for split in ("train", "val", "test"):
        if name.startswith(split + "_"):
            return f"{name[len(split) + 1:]}/{split}"
    return name


class TensorBoardLogger:
    """Log scalars per epoch as TensorBoard event files in ``log_dir`` (a run's folder).

    ``train_loss`` and ``val_loss`` become the tag ``loss`` with the series ``train`` and
    ``val`` (``loss/train``, ``loss/val``), so TensorBoard draws them on one chart group.
    Needs the ``tensorboard`` package (:func:`tensorboard_available`); raises
    ``ImportError`` saying so otherwise.
    """

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        try:
            SummaryWriter = _summary_writer_class()
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package, which is not installed here "
                f"({error}). Use CSVLogger, or run_loggers() which falls back to it."
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Write one scalar per metric at step ``epoch``."""
        for name, value in metrics.items():
            self.writer.add_scalar(_tensorboard_tag(name), float(value), epoch)
        self.writer.flush()

    def log_hparams(self, hparams: Mapping[str, Any], results: Mapping[str, float]) -> None:
        """Show a run's hyperparameters and final results in TensorBoard's HPARAMS tab."""
        plain = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.writer.add_hparams(plain, {f"hparam/{k}": float(v) for k, v in results.items()},
                                run_name=".")
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def run_loggers(run: Run, *, tensorboard: bool = True) -> list[Any]:
    """The loggers of a run: a :class:`CSVLogger` to ``metrics.csv``, always, and a
    :class:`TensorBoardLogger` writing event files into the run's folder when
    ``tensorboard`` is true and the ``tensorboard`` package is installed.

    Pass the list as ``train(..., log_hooks=...)``. The CSV is what :func:`read_metrics`
    and :func:`compare_runs` read; the event files are what ``tensorboard --logdir``
    shows.
    """
    loggers: list[Any] = [CSVLogger(run.metrics_file)]
    if tensorboard and tensorboard_available():
        loggers.append(TensorBoardLogger(run.path))
    return loggers


def read_metrics(run: Run | str | os.PathLike[str]) -> Any:
    """A run's ``metrics.csv`` as a pandas ``DataFrame``, one row per epoch."""
    import pandas as pd

    path = run.metrics_file if isinstance(run, Run) else Path(run)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"read_metrics: no metrics file at {path}; did the run log with a CSVLogger?")
    return pd.read_csv(path)


def write_summary(run: Run, results: Mapping[str, Any]) -> Path:
    """Write a run's final results (numbers and text) to its ``summary.json``.

    NumPy numbers and one-element tensors become plain ints and floats, so the file is JSON.
    """
    def plain(value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return value.item()
        return value

    clean = {str(k): plain(v) for k, v in results.items()}
    run.summary_file.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
    return run.summary_file


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def compare_runs(root: str | os.PathLike[str] | None = None) -> Any:
    """One table (a pandas ``DataFrame``) of every run under ``root``: its config and results.

    A row per run folder that holds a ``config.yaml``: the column ``run`` (the folder's
    name), every config entry under its dotted key (``optim.lr``) and every entry of the
    run's ``summary.json``. Sorted by run name. This is "saving and comparing experiments"
    without a tracking server.
    """
    import pandas as pd

    yaml = _yaml()
    base = runs_root(root)
    rows = []
    for folder in sorted(p for p in base.iterdir() if (p / "config.yaml").is_file()):
        row: dict[str, Any] = {"run": folder.name}
        row.update(_flatten(yaml.safe_load((folder / "config.yaml").read_text()) or {}))
        summary = folder / "summary.json"
        if summary.is_file():
            row.update(json.loads(summary.read_text()))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainState:
    """Where a :func:`train` run is: what callbacks see and what ``train`` returns.

    ``epoch`` counts completed epochs and ``step`` optimizer steps. ``history`` maps
    ``train_loss``, ``val_loss``, ``train_<metric>`` and ``val_<metric>`` to one value per
    epoch; ``lrs`` is the learning rate each epoch started with; ``metrics`` are the last
    epoch's values. A callback sets ``stop`` to end training after the current epoch.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any | None
    epochs: int
    train_loader: Iterable[Any]
    epoch: int = 0
    step: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    lrs: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    stop: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    logger: logging.Logger | None = None

    def loader_generators(self) -> dict[str, torch.Generator]:
        """The training loader's shuffling generator, by name, when it has one of its own."""
        generator = getattr(self.train_loader, "generator", None)
        return {"train_loader": generator} if isinstance(generator, torch.Generator) else {}

    def best_epoch(self, monitor: str = "val_loss", mode: str = "min") -> int | None:
        """The 1-based epoch with the best ``monitor`` value so far (None before any)."""
        values = self.history.get(monitor) or []
        if not values:
            return None
        pick = min if mode == "min" else max
        return values.index(pick(values)) + 1


class Callback:
    """Code that runs at fixed points of :func:`train`: subclass and override what you need.

    ``on_train_begin(state)`` before the first epoch (after a resume, too);
    ``on_batch_end(state, loss)`` after each optimizer step with that batch's loss;
    ``on_epoch_end(state)`` after each epoch, once ``state.metrics`` and ``state.history``
    hold it (set ``state.stop = True`` to end training); ``on_train_end(state)`` at the
    end. A callback with something to remember across a resume returns it from
    ``state_dict()`` and takes it back in ``load_state_dict()``; :class:`Checkpointer`
    saves it.
    """

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before training (or resumed training) starts."""

    def on_batch_end(self, state: TrainState, loss: float) -> None:
        """Called after every optimizer step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Called after every epoch."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once when training ends (all epochs done or stopped)."""

    def state_dict(self) -> dict[str, Any]:
        """What to keep in a checkpoint (nothing by default)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned."""


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights.

    ``mode="min"`` for losses, ``"max"`` for accuracies; an improvement must beat the best
    by more than ``min_delta``. With ``restore_best`` the model ends with the weights of
    its best epoch (kept in memory, on the CPU).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, mode: str = "min",
                 min_delta: float = 0.0, restore_best: bool = True) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}.")
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.patience = positive_int("EarlyStopping", "patience", patience)
        self.restore_best = restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        """Track the best value; ask to stop after ``patience`` epochs without improvement."""
        if self.monitor not in state.metrics:
            raise KeyError(f"EarlyStopping: {self.monitor!r} is not logged; there is {sorted(state.metrics)}.")
        value = state.metrics[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                self.best_weights = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop = True
                if state.logger is not None:
                    state.logger.info(f"early stop after epoch {state.epoch}: best {self.monitor} "
                                      f"{self.best:.4f} at epoch {self.best_epoch}")

    def on_train_end(self, state: TrainState) -> None:
        """Put the best epoch's weights back into the model."""
        if self.restore_best and self.best_weights is not None and self.best_epoch != state.epoch:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        """Best value and epoch, epochs waited and the best weights."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = state["best_weights"]


class Checkpointer(Callback):
    """Save ``last.pt`` every ``every`` epochs (and at the end), and ``best.pt`` on improvement.

    ``directory`` is usually ``run.checkpoint_dir``. ``last.pt`` holds everything
    :func:`train` needs to resume exactly (``resume_from=``): weights, optimizer,
    scheduler, epoch, random generators, the loader's generator, the history and the
    other callbacks' states. ``best.pt`` is written whenever ``monitor`` improves (set
    ``monitor=None`` to skip it).
    """

    def __init__(self, directory: str | os.PathLike[str] | Run, every: int = 1,
                 monitor: str | None = "val_loss", mode: str = "min") -> None:
        self.directory = directory.checkpoint_dir if isinstance(directory, Run) else Path(directory)
        self.every = positive_int("Checkpointer", "every", every)
        if mode not in ("min", "max"):
            raise ValueError(f"Checkpointer: mode must be 'min' or 'max', got {mode!r}.")
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None

    @property
    def last(self) -> Path:
        """The path of ``last.pt``."""
        return self.directory / "last.pt"

    @property
    def best_path(self) -> Path:
        """The path of ``best.pt``."""
        return self.directory / "best.pt"

    def _save(self, path: Path, state: TrainState) -> None:
        save_checkpoint(
            path, state.model, state.optimizer, state.scheduler, epoch=state.epoch, step=state.step,
            generators=state.loader_generators(),
            extra={"history": state.history, "lrs": state.lrs,
                   "callbacks": [cb.state_dict() for cb in state.callbacks]},
        )

    def on_epoch_end(self, state: TrainState) -> None:
        """Write ``best.pt`` on improvement, then ``last.pt`` when due."""
        if self.monitor is not None and self.monitor in state.metrics:
            value = state.metrics[self.monitor]
            if _improved(value, self.best, self.mode, 0.0):
                self.best = value
                self._save(self.best_path, state)
        if state.epoch % self.every == 0 or state.stop or state.epoch >= state.epochs:
            self._save(self.last, state)

    def state_dict(self) -> dict[str, Any]:
        """The best value seen."""
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the best value seen."""
        self.best = state["best"]


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(
        "train expects each batch to be a pair (inputs, targets), as a DataLoader over a "
        f"TensorDataset(X, y) gives; got a {type(batch).__name__}. Make __getitem__ return (x, y)."
    )


def _check_loss(loss: torch.Tensor, where: str) -> None:
    if loss.dim() != 0:
        raise ValueError(f"the loss function returned shape {tuple(loss.shape)} ({where}), not one number; "
                         "use a reduction such as 'mean'.")
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {loss.item()} ({where}). Usual causes: a learning rate that is too high "
            "(try 10x lower), unnormalised inputs, or exploding gradients (pass clip_grad_norm=1.0)."
        )


def _epoch(model: nn.Module, loader: Iterable[Any], loss_fn: LossFn, metrics: Mapping[str, Metric],
           device: torch.device, state: TrainState | None = None, clip_grad_norm: float | None = None,
           scheduler_per_step: bool = False) -> dict[str, float]:
    """One pass over ``loader``: a training pass when ``state`` is given, else an evaluation."""
    training = state is not None
    totals = {"loss": 0.0, **{name: 0.0 for name in metrics}}
    count = 0
    for index, batch in enumerate(loader):
        inputs, targets = (t.to(device) for t in _unpack(batch))
        with torch.set_grad_enabled(training):
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
        _check_loss(loss, f"batch {index}" + (f" of epoch {state.epoch + 1}" if state else " of evaluation"))
        if state is not None:
            state.optimizer.zero_grad()
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            state.optimizer.step()
            state.step += 1
            if scheduler_per_step and state.scheduler is not None:
                state.scheduler.step()
        size = len(targets)
        value = loss.item()
        totals["loss"] += value * size
        for name, metric in metrics.items():
            totals[name] += float(metric(outputs.detach(), targets)) * size
        count += size
        if state is not None:
            for callback in state.callbacks:
                callback.on_batch_end(state, value)
    if count == 0:
        raise ValueError("the data loader produced no batches; is the dataset empty?")
    return {name: total / count for name, total in totals.items()}


def train(
    model: nn.Module,
    train_loader: Iterable[Any],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    val_loader: Iterable[Any] | None = None,
    scheduler: Any | None = None,
    scheduler_interval: str = "epoch",
    metrics: Mapping[str, Metric] | None = None,
    callbacks: Sequence[Callback] = (),
    log_hooks: Sequence[LogHook] = (),
    logger: logging.Logger | None = None,
    device: torch.device | str | None = None,
    clip_grad_norm: float | None = None,
    resume_from: str | os.PathLike[str] | None = None,
) -> TrainState:
    """Train ``model`` until ``epochs`` epochs are complete and return the :class:`TrainState`.

    Each epoch: a training pass in ``train()`` mode (zero_grad, forward, loss, backward,
    optional clipping of the gradients' global norm to ``clip_grad_norm``, step), then,
    with a ``val_loader``, an evaluation pass in ``eval()`` mode without gradients.
    ``metrics`` maps names to functions ``metric(outputs, targets) -> float`` (such as
    ``nncourse.accuracy``), averaged over examples like the loss.

    The ``scheduler`` steps once per epoch (``scheduler_interval="epoch"``, after
    validation; ``ReduceLROnPlateau`` is given ``val_loss``, or ``train_loss`` without
    validation) or after every optimizer step (``"step"``, for ``OneCycleLR``).

    After each epoch, every function in ``log_hooks`` is called as ``hook(epoch,
    values)`` with the epoch's losses, metrics, learning rate (``lr``) and duration
    (``seconds``): a :class:`CSVLogger`, a :class:`TensorBoardLogger` or any function.
    ``logger`` (see :func:`get_logger`) gets one line per epoch. Then each callback's
    ``on_epoch_end`` runs; one can stop training (:class:`EarlyStopping`).

    ``resume_from`` names a checkpoint from :class:`Checkpointer` (or
    :func:`save_checkpoint` with the same extras): the model, optimizer, scheduler, random
    generators, the loader's own generator, the history and the callbacks' states are
    restored, and training continues after the saved epoch up to ``epochs``, as if it had
    never stopped. ``device`` defaults to :func:`nncourse.get_device`; the model moves
    there and each batch follows.
    """
    positive_int("train", "epochs", epochs)
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"train: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}.")
    target = torch.device(device) if device is not None else get_device()
    model.to(target)
    metric_fns = dict(metrics or {})
    state = TrainState(model, optimizer, scheduler, epochs, train_loader, callbacks=list(callbacks),
                       logger=logger)
    if resume_from is not None:
        saved = load_checkpoint(resume_from, model, optimizer, scheduler,
                                generators=state.loader_generators())
        state.epoch, state.step = saved.epoch, saved.step
        state.history = {k: list(v) for k, v in saved.extra.get("history", {}).items()}
        state.lrs = list(saved.extra.get("lrs", []))
        callback_states = saved.extra.get("callbacks", [])
        if len(callback_states) == len(state.callbacks):
            for callback, callback_state in zip(state.callbacks, callback_states):
                callback.load_state_dict(callback_state)
        if logger is not None:
            logger.info(f"resumed from {resume_from} after epoch {saved.epoch}")
    for callback in state.callbacks:
        callback.on_train_begin(state)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    while state.epoch < epochs and not state.stop:
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        model.train()
        values = {f"train_{k}": v for k, v in _epoch(
            model, train_loader, loss_fn, metric_fns, target, state, clip_grad_norm,
            scheduler_per_step=scheduler_interval == "step").items()}
        if val_loader is not None:
            model.eval()
            with torch.no_grad():
                values.update({f"val_{k}": v for k, v in _epoch(model, val_loader, loss_fn, metric_fns,
                                                                 target).items()})
            model.train()
        state.epoch += 1
        for key, value in values.items():
            state.history.setdefault(key, []).append(value)
        state.lrs.append(lr)
        if scheduler is not None and scheduler_interval == "epoch":
            if plateau:
                scheduler.step(values.get("val_loss", values["train_loss"]))
            else:
                scheduler.step()
        state.metrics = dict(values)
        seconds = time.perf_counter() - started
        for hook in log_hooks:
            hook(state.epoch, {**values, "lr": lr, "seconds": seconds})
        if logger is not None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
            logger.info(f"epoch {state.epoch}/{epochs}  {shown}  lr {lr:.3g}  ({seconds:.1f}s)")
        for callback in state.callbacks:
            callback.on_epoch_end(state)
    for callback in state.callbacks:
        callback.on_train_end(state)
    return state
