"""Run folders, YAML configs, checkpoints, logging and the training loop of nncourse.experiments."""

import dataclasses
import json
import logging
import random
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nncourse import experiments
from nncourse.experiments import (
    RUNS_DIR_ENV,
    Callback,
    Checkpointer,
    ConfigError,
    CSVLogger,
    EarlyStopping,
    compare_runs,
    config_from_dict,
    config_to_dict,
    create_run,
    get_logger,
    load_checkpoint,
    load_config,
    override,
    parse_overrides,
    read_metrics,
    rng_state,
    run_loggers,
    runs_root,
    save_checkpoint,
    save_config,
    set_rng_state,
    tensorboard_available,
    train,
    write_summary,
)
from nncourse.loaders import seeded_loader
from nncourse.train import accuracy


@pytest.fixture(autouse=True)
def _no_runs_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)


# ----------------------------------------------------------------- run folders


def test_runs_root_is_runs_in_the_current_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without a root or the variable, are runs kept in ./runs?"""
    monkeypatch.chdir(tmp_path)
    assert runs_root() == (tmp_path / "runs").resolve()
    assert (tmp_path / "runs").is_dir()


def test_runs_root_falls_back_to_the_temporary_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where ./runs cannot be created (a read-only folder, as in the sandbox), does it use /tmp?"""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the folder would go")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert runs_root() == (scratch / "nncourse-runs").resolve()


def test_runs_root_follows_the_variable_and_refuses_an_unwritable_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Does NNCOURSE_RUNS_DIR win, and does an unusable explicit root fail with a clear error?"""
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert runs_root() == (tmp_path / "elsewhere").resolve()
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="cannot create files"):
        runs_root(blocker / "runs")


def test_create_run_never_overwrites_and_resume_reuses(tmp_path: Path) -> None:
    """Does a second run of the same name get a new folder, and resume=True the old one?"""
    first = create_run("baseline", tmp_path)
    second = create_run("baseline", tmp_path)
    assert first.path.name == "baseline" and second.path.name == "baseline-2"
    assert create_run("baseline", tmp_path, resume=True).path == first.path
    assert first.checkpoint_dir.is_dir()
    assert first.config_file.name == "config.yaml" and first.metrics_file.name == "metrics.csv"
    with pytest.raises(ValueError, match="not a usable run name"):
        create_run("../escape", tmp_path)


# ----------------------------------------------------------------- configs


@dataclasses.dataclass
class Optim:
    name: Literal["sgd", "adam"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclasses.dataclass
class Model:
    hidden: tuple[int, ...] = (32,)
    dropout: float = 0.0
    batch_norm: bool = False


@dataclasses.dataclass
class Experiment:
    name: str
    epochs: int = 5
    seed: int | None = None
    model: Model = dataclasses.field(default_factory=Model)
    optim: Optim = dataclasses.field(default_factory=Optim)


CONFIG_TEXT = """\
name: demo
epochs: 3
model:
  hidden: [64, 32]
  dropout: 0.1
optim:
  name: sgd
  lr: 1e-2        # PyYAML reads this as text: the schema makes it a number
"""


def test_load_config_validates_and_converts(tmp_path: Path) -> None:
    """Does a YAML file become the dataclass, with defaults, tuples and floats from '1e-2'?"""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG_TEXT)
    config = load_config(path, Experiment)
    assert config == Experiment("demo", 3, None, Model((64, 32), 0.1, False), Optim("sgd", 0.01, 0.0))
    assert load_config(path)["optim"]["lr"] == "1e-2"  # without a schema: what YAML gave


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    """Do dotted overrides change nested values, typed as YAML reads them?"""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG_TEXT)
    config = load_config(path, Experiment, ["optim.lr=0.5", "model.hidden=[8]", "seed=3",
                                            "model.batch_norm=true"])
    assert (config.optim.lr, config.model.hidden, config.seed, config.model.batch_norm) == (0.5, (8,), 3, True)
    assert parse_overrides(["a.b.c=adam", "x=null"]) == {"a": {"b": {"c": "adam"}}, "x": None}
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_overrides(["optim.lr"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "optim": {"lrr": 0.1}}, r"optim\.lrr: unknown key\. Did you mean 'lr'\?"),
        ({"name": "x", "epochs": "ten"}, r"epochs: expected a whole number, got 'ten'"),
        ({"name": "x", "epochs": True}, r"epochs: expected a whole number"),
        ({"name": "x", "optim": {"name": "adamw"}}, r"optim\.name: expected one of 'sgd', 'adam'"),
        ({"name": "x", "model": {"hidden": [8, "wide"]}}, r"model\.hidden\[1\]: expected a whole number"),
        ({"name": "x", "model": {"batch_norm": "yes please"}}, r"model\.batch_norm: expected true or false"),
        ({"epochs": 2}, r"name: missing"),
        ({"name": "x", "optim": {"lr": -1.0}}, r"optim: lr must be positive"),
        ({"name": "x", "model": [1, 2]}, r"model: expected a mapping of Model's fields"),
    ],
)
def test_config_errors_name_the_key_and_the_expectation(data: dict, message: str) -> None:
    """Does every kind of mistake fail with the key's dotted path and what was expected?"""
    with pytest.raises(ConfigError, match=message):
        config_from_dict(Experiment, data)


def test_config_file_errors(tmp_path: Path) -> None:
    """Are a missing file, a YAML syntax error and a non-mapping file reported as ConfigError?"""
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml", Experiment)
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml", Experiment)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml", Experiment)


def test_override_copies_and_save_config_round_trips(tmp_path: Path) -> None:
    """Does override() leave the original alone, and save_config write what load_config reads?"""
    base = Experiment("base")
    changed = override(base, {"optim.lr": 0.1, "model.dropout": 0.5})
    assert base.optim.lr == 1e-3 and changed.optim.lr == 0.1 and changed.model.dropout == 0.5
    with pytest.raises(ConfigError, match="unknown key"):
        override(base, {"optim.momentum": 0.9})
    path = save_config(changed, tmp_path / "saved.yaml")
    assert load_config(path, Experiment) == changed
    assert config_to_dict(changed)["model"]["hidden"] == [32]


# ----------------------------------------------------------------- random state and checkpoints


def draws() -> list[float]:
    return [random.random(), float(np.random.rand()), torch.rand(()).item(), float(np.random.randn())]


def test_rng_state_round_trip() -> None:
    """Does set_rng_state(rng_state()) repeat the next draws of Python, NumPy and torch?"""
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    state = rng_state()
    first = draws()
    set_rng_state(state)
    assert draws() == first


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def data(n: int = 60, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    return TensorDataset(X, (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long())


def test_checkpoint_restores_model_optimizer_scheduler_and_generators(tmp_path: Path) -> None:
    """After load_checkpoint, are weights, Adam's moments, the schedule and a generator back?"""
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    generator = torch.Generator().manual_seed(9)
    torch.rand(3, generator=generator)
    path = save_checkpoint(tmp_path / "ck" / "last.pt", model, optimizer, scheduler, epoch=4, step=17,
                           extra={"history": {"train_loss": [1.0, 0.5]}}, generators={"g": generator})
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left
    expected_next = torch.rand(2, generator=generator)

    fresh = small_model(seed=5)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.01)
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, step_size=1, gamma=0.5)
    fresh_generator = torch.Generator().manual_seed(0)
    saved = load_checkpoint(path, fresh, fresh_optimizer, fresh_scheduler, generators={"g": fresh_generator})
    assert (saved.epoch, saved.step, saved.extra) == (4, 17, {"history": {"train_loss": [1.0, 0.5]}})
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"],
                       optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(2, generator=fresh_generator), expected_next)
    with pytest.raises(KeyError, match="no generator 'other'"):
        load_checkpoint(path, generators={"other": torch.Generator()})


def test_load_checkpoint_refuses_a_bare_state_dict(tmp_path: Path) -> None:
    """Does a plain state_dict file get a message saying how to load it instead?"""
    torch.save(small_model().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="bare state_dict"):
        load_checkpoint(tmp_path / "weights.pt")


# ----------------------------------------------------------------- the loop


def run_training(epochs: int, run_dir: Path, resume: bool = False, scheduler_kind: str = "step",
                 hooks=()) -> experiments.TrainState:
    """A small seeded run with dropout, a shuffled seeded loader and a scheduler."""
    torch.manual_seed(0)
    model = small_model(1)
    loader = seeded_loader(data(), batch_size=16, seed=3)
    val = DataLoader(data(30, seed=1), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    if scheduler_kind == "step":
        scheduler, interval = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5), "epoch"
    elif scheduler_kind == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.3, total_steps=6 * len(loader))
        interval = "step"
    else:
        scheduler, interval = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0), "epoch"
    return train(model, loader, nn.CrossEntropyLoss(), optimizer, epochs, val_loader=val, scheduler=scheduler,
                 scheduler_interval=interval, metrics={"accuracy": accuracy},
                 callbacks=[Checkpointer(run_dir), EarlyStopping(patience=50)], log_hooks=hooks,
                 device="cpu", clip_grad_norm=1.0,
                 resume_from=run_dir / "last.pt" if resume else None)


@pytest.mark.parametrize("scheduler_kind", ["step", "onecycle", "plateau"])
def test_resume_is_exact(tmp_path: Path, scheduler_kind: str) -> None:
    """Does 3 epochs, then a resume to 6 in fresh objects, equal 6 epochs straight through?"""
    straight = run_training(6, tmp_path / "straight", scheduler_kind=scheduler_kind)
    run_training(3, tmp_path / "split", scheduler_kind=scheduler_kind)
    torch.manual_seed(123)  # the resumed process's own random state must not matter
    resumed = run_training(6, tmp_path / "split", resume=True, scheduler_kind=scheduler_kind)
    assert resumed.epoch == straight.epoch == 6 and resumed.step == straight.step
    assert resumed.history == straight.history and resumed.lrs == straight.lrs
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "split" / "best.pt").is_file()


def test_train_logs_history_hooks_and_step_schedules(tmp_path: Path) -> None:
    """Are history, learning rates and hook calls one per epoch, with OneCycle stepping per batch?"""
    calls = []
    state = run_training(6, tmp_path, scheduler_kind="onecycle", hooks=[lambda e, v: calls.append((e, dict(v)))])
    assert sorted(state.history) == ["train_accuracy", "train_loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 6 for v in state.history.values())
    assert [e for e, _ in calls] == [1, 2, 3, 4, 5, 6]
    assert set(calls[0][1]) == {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "seconds"}
    assert state.lrs[0] == pytest.approx(0.3 / 25) and max(state.lrs) > state.lrs[0]
    assert state.step == 6 * 4
    assert state.best_epoch() == state.history["val_loss"].index(min(state.history["val_loss"])) + 1


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    """With a diverging learning rate, does training stop early and keep the best epoch's weights?"""
    torch.manual_seed(0)
    model = small_model()
    loader = DataLoader(data(), batch_size=60)
    stopper = EarlyStopping(patience=2)
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, state):
            seen.append({k: v.clone() for k, v in state.model.state_dict().items()})

    state = train(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=5.0), 30,
                  val_loader=loader, callbacks=[Spy(), stopper], device="cpu")
    assert state.stop and state.epoch < 30
    assert state.epoch - stopper.best_epoch == 2
    for key, value in model.state_dict().items():
        assert torch.equal(value, seen[stopper.best_epoch - 1][key])


def test_train_refuses_bad_arguments() -> None:
    """Are a wrong scheduler interval and a batch that is not a pair explained?"""
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler_interval"):
        train(model, [], nn.CrossEntropyLoss(), optimizer, 1, scheduler_interval="batch")
    with pytest.raises(ValueError, match="pair"):
        train(model, [torch.randn(2, 4)], nn.CrossEntropyLoss(), optimizer, 1, device="cpu")


# ----------------------------------------------------------------- logging and comparing runs


def test_csv_logger_replaces_repeated_epochs(tmp_path: Path) -> None:
    """Does logging an epoch again (after a resume) replace it and drop the later rows?"""
    logger = CSVLogger(tmp_path / "metrics.csv")
    for epoch in (1, 2, 3):
        logger(epoch, {"train_loss": 1.0 / epoch})
    again = CSVLogger(tmp_path / "metrics.csv")
    again(2, {"train_loss": 0.25, "val_loss": 0.3})
    table = read_metrics(tmp_path / "metrics.csv")
    assert table["epoch"].tolist() == [1, 2]
    assert table["train_loss"].tolist() == [1.0, 0.25]
    assert table["val_loss"].isna().tolist() == [True, False]


def test_get_logger_writes_file_and_stdout_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Does the run logger write to train.log and stdout, once per line even when made twice?"""
    run = create_run("logged", tmp_path)
    get_logger(run)
    logger = get_logger(run)
    logger.info("hello")
    logger.debug("hidden")
    for handler in logger.handlers:
        handler.flush()
    out = capsys.readouterr()
    assert out.out == "hello\n" and out.err == ""
    lines = run.log_file.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO    hello")
    assert not logger.propagate and logger.level == logging.INFO


def test_run_loggers_fall_back_to_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the tensorboard package, do the run's loggers still log (to CSV)?"""
    monkeypatch.setattr(experiments, "tensorboard_available", lambda: False)
    run = create_run("csv-only", tmp_path)
    loggers = run_loggers(run)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]
    loggers[0](1, {"train_loss": 0.5})
    assert read_metrics(run)["train_loss"].tolist() == [0.5]


def test_tensorboard_logger_writes_event_files(tmp_path: Path) -> None:
    """With tensorboard installed, do the loggers write readable event files into the run folder?"""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = create_run("tb", tmp_path)
    loggers = run_loggers(run)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger", "TensorBoardLogger"]
    for epoch in (1, 2):
        for logger in loggers:
            logger(epoch, {"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch, "lr": 0.1})
    loggers[1].close()
    events = EventAccumulator(str(run.path))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss/train", "loss/val", "lr"}
    assert [e.value for e in events.Scalars("loss/val")] == [2.0, 1.0]


def test_tensorboard_availability_matches_the_import() -> None:
    """Does tensorboard_available() say exactly whether torch.utils.tensorboard imports?"""
    try:
        import torch.utils.tensorboard  # noqa: F401
        importable = True
    except ImportError:
        importable = False
    assert tensorboard_available() is importable


def test_compare_runs_tabulates_configs_and_summaries(tmp_path: Path) -> None:
    """Does compare_runs give one row per run with dotted config keys and summary values?"""
    for lr in (0.1, 0.01):
        run = create_run(f"lr={lr}", tmp_path)
        save_config(override(Experiment("sweep"), {"optim.lr": lr}), run.config_file)
        write_summary(run, {"val_accuracy": 0.5 + lr, "best_epoch": 3})
    (tmp_path / "not-a-run").mkdir()
    table = compare_runs(tmp_path)
    assert table["run"].tolist() == ["lr=0.01", "lr=0.1"]
    assert table["optim.lr"].tolist() == [0.01, 0.1]
    assert table["model.hidden"].tolist() == ["[32]", "[32]"]
    assert table["val_accuracy"].tolist() == pytest.approx([0.51, 0.6])
    summary = json.loads((tmp_path / "lr=0.1" / "summary.json").read_text())
    assert summary["best_epoch"] == 3 and isinstance(summary["best_epoch"], int)
