"""nncourse.forbid: each way a student could reach a forbidden thing is refused, and nothing else is.

Each escape test is a sentence about one route around the guard; the guard must raise
ForbiddenError for it, and everything must work again after the block.
"""

import importlib
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nncourse
from nncourse import ForbiddenError, forbid

# References saved at import time, as a student's answer cell could save them.
SAVED_BCE = F.binary_cross_entropy
SAVED_LINEAR_CLASS = nn.Linear
SAVED_BACKWARD = torch.Tensor.backward
SAVED_GRAD = torch.autograd.grad

BCE = "torch.nn.functional.binary_cross_entropy"
RULE = "compute it by hand"


@pytest.fixture
def probs() -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed probabilities and targets for a binary cross-entropy."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(5, generator=generator) * 0.8 + 0.1, torch.rand(5, generator=generator)


def by_hand_bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The BCE written with basic operations, as the exercise asks."""
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


# --- The API --------------------------------------------------------------------------------


def test_forbid_and_forbidden_error_are_exported() -> None:
    """Are forbid and ForbiddenError importable from nncourse, and is the error an Exception?"""
    assert nncourse.forbid is forbid
    assert issubclass(ForbiddenError, Exception)
    assert "forbid" in nncourse.__all__ and "ForbiddenError" in nncourse.__all__


def test_the_error_names_the_rule_and_what_was_used(probs) -> None:
    """Does the message carry the rule and the forbidden function the code called?"""
    with pytest.raises(ForbiddenError) as caught:
        with forbid(BCE, rule="compute the BCE by hand"):
            F.binary_cross_entropy(*probs)
    message = str(caught.value)
    assert "compute the BCE by hand" in message
    assert "binary_cross_entropy" in message
    assert caught.value.rule == "compute the BCE by hand"


def test_an_unknown_name_fails_when_the_guard_is_built() -> None:
    """Is a misspelt path refused at once, naming the missing part?"""
    with pytest.raises(ValueError, match="binary_cross_entropie"):
        forbid("torch.nn.functional.binary_cross_entropie", rule=RULE)
    with pytest.raises(ValueError, match="no module"):
        forbid("no_such_library.thing", rule=RULE)


def test_a_rule_is_required() -> None:
    """Is an empty rule or a missing name refused (the student must read why)?"""
    with pytest.raises(ValueError):
        forbid(BCE, rule=" ")
    with pytest.raises(ValueError):
        forbid(rule=RULE)


def test_a_compiled_function_outside_torch_is_refused_at_build() -> None:
    """Does forbidding numpy.exp (a ufunc the guard cannot see) fail loudly instead of silently?"""
    with pytest.raises(ValueError, match="compiled"):
        forbid("numpy.exp", rule=RULE)


# --- Paths to a forbidden torch function ------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda p, y: F.binary_cross_entropy(p, y),
        lambda p, y: torch.nn.functional.binary_cross_entropy(p, y),
        lambda p, y: torch._C._nn.binary_cross_entropy(p, y),
        lambda p, y: torch.ops.aten.binary_cross_entropy(p, y),
        lambda p, y: torch.ops.aten.binary_cross_entropy.default(p, y),
        lambda p, y: SAVED_BCE(p, y),
        lambda p, y: nn.BCELoss()(p, y),
    ],
    ids=["F", "torch.nn.functional", "torch._C._nn", "torch.ops.aten", "aten overload", "saved reference",
         "nn.BCELoss"],
)
def test_every_path_to_a_forbidden_function_is_refused(probs, call) -> None:
    """Is F.binary_cross_entropy refused through each of its paths and saved references?"""
    with pytest.raises(ForbiddenError), forbid(BCE, rule=RULE):
        call(*probs)


def test_by_hand_code_runs_and_the_function_works_again_after(probs) -> None:
    """Does the by-hand BCE run inside the guard, and the library function after it?"""
    with forbid(BCE, rule=RULE):
        inside = by_hand_bce(*probs)
    torch.testing.assert_close(inside, F.binary_cross_entropy(*probs))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: torch.sigmoid(x),
        lambda x: x.sigmoid(),
        lambda x: x.clone().sigmoid_(),
        lambda x: torch.special.expit(x),
        lambda x: F.sigmoid(x),
        lambda x: torch.ops.aten.sigmoid.default(x),
        lambda x: nn.Sigmoid()(x),
    ],
    ids=["torch.sigmoid", "Tensor.sigmoid", "in place", "special.expit", "F.sigmoid", "aten", "nn.Sigmoid"],
)
def test_tensor_methods_and_aliases_of_a_forbidden_op_are_refused(call) -> None:
    """Is torch.sigmoid refused as a Tensor method, in place, and through its aliases?"""
    with pytest.raises(ForbiddenError), forbid("torch.sigmoid", rule="write the logistic function"):
        call(torch.randn(3))


def test_a_copy_of_a_torch_function_made_before_the_block_is_still_refused(probs) -> None:
    """Is a copy rebuilt from F.binary_cross_entropy's code (so not code-swapped) refused by op name?"""
    import types

    copy = types.FunctionType(SAVED_BCE.__code__, {**SAVED_BCE.__globals__}, "copy", SAVED_BCE.__defaults__)
    with pytest.raises(ForbiddenError), forbid(BCE, rule=RULE):
        copy(*probs)


@pytest.mark.parametrize("how", ["import_module", "__import__", "sys.modules"])
def test_importing_the_module_inside_the_block_gives_the_guarded_function(probs, how) -> None:
    """Do importlib.import_module, __import__ and sys.modules lead to the same refusal?"""
    with pytest.raises(ForbiddenError), forbid(BCE, rule=RULE):
        if how == "import_module":
            module = importlib.import_module("torch.nn.functional")
        elif how == "__import__":
            module = __import__("torch.nn.functional", fromlist=["binary_cross_entropy"])
        else:
            module = sys.modules["torch.nn.functional"]
        module.binary_cross_entropy(*probs)


def test_cdist_and_its_private_kernel_are_refused() -> None:
    """Is torch.cdist refused, also as aten._cdist_forward (the kernel it calls)?"""
    x = torch.randn(4, 3)
    with forbid("torch.cdist", rule="compute the distances by broadcasting"):
        ((x[:, None] - x[None]) ** 2).sum(-1).sqrt()
        for call in (lambda: torch.cdist(x, x), lambda: torch.ops.aten._cdist_forward(x, x, 2.0, None)):
            with pytest.raises(ForbiddenError):
                call()


def test_a_python_only_torch_function_is_refused() -> None:
    """Is clip_grad_norm_ (never seen by the modes under its own name) refused, also via a saved reference?"""
    saved = torch.nn.utils.clip_grad_norm_
    parameter = nn.Parameter(torch.ones(3))
    parameter.grad = torch.ones(3)
    with forbid("torch.nn.utils.clip_grad_norm_", rule="clip the gradient yourself"):
        with pytest.raises(ForbiddenError):
            torch.nn.utils.clip_grad_norm_([parameter], 1.0)
        with pytest.raises(ForbiddenError):
            saved([parameter], 1.0)
    assert torch.nn.utils.clip_grad_norm_([parameter], 1.0) > 0


def test_disabling_torch_functions_does_not_bypass_the_guard(probs) -> None:
    """Does torch._C.DisableTorchFunction (which skips the function mode) still raise?"""
    x, w = torch.randn(2, 3), torch.randn(4, 3)
    with forbid("torch.nn.functional.linear", rule=RULE):
        with pytest.raises(ForbiddenError), torch._C.DisableTorchFunction():
            F.linear(x, w)
    with forbid(BCE, rule=RULE):
        with pytest.raises(ForbiddenError), torch._C.DisableTorchFunction():
            F.binary_cross_entropy(*probs)


def test_popping_the_function_mode_does_not_bypass_the_guard() -> None:
    """Is a torch call refused when the student pops the guard's function mode off torch's stack?"""
    from torch.overrides import _pop_mode_temporarily

    x, w = torch.randn(2, 3), torch.randn(4, 3)
    with pytest.raises(ForbiddenError), forbid("torch.nn.functional.linear", rule=RULE):
        with _pop_mode_temporarily():
            F.linear(x, w)


def test_popping_the_dispatch_mode_does_not_bypass_the_guard(probs) -> None:
    """Is a torch call refused when the student pops the guard's dispatch mode?"""
    from torch.utils._python_dispatch import _disable_current_modes

    with pytest.raises(ForbiddenError), forbid(BCE, rule=RULE):
        with _disable_current_modes():
            F.binary_cross_entropy(*probs)


def test_a_student_tensor_subclass_is_refused(probs) -> None:
    """Is a tensor subclass with its own __torch_function__ (which would run unguarded) refused?"""

    class Sneaky(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return super().__torch_function__(func, types, args, kwargs)

    p = probs[0].as_subclass(Sneaky)
    with pytest.raises(ForbiddenError, match="subclass"), forbid(BCE, rule=RULE):
        p * 2


def test_a_mode_left_behind_is_reported_and_removed() -> None:
    """Is a torch function mode the student leaves pushed removed at exit and reported?"""
    from torch.overrides import TorchFunctionMode

    class Leftover(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    before = torch._C._len_torch_function_stack()
    with pytest.raises(ForbiddenError, match="left on"), forbid("torch.sigmoid", rule=RULE):
        Leftover().__enter__()
    assert torch._C._len_torch_function_stack() == before


def test_a_same_named_tensor_method_that_is_another_op_stays_allowed() -> None:
    """Does forbidding F.unfold (im2col) leave Tensor.unfold (sliding windows) usable, and back?"""
    x = torch.randn(1, 1, 4, 4)
    with forbid("torch.nn.functional.unfold", rule="build the patches with Tensor.unfold"):
        x.unfold(2, 2, 1).unfold(3, 2, 1)
        for call in (lambda: F.unfold(x, 2), lambda: torch._C._nn.im2col(x, (2, 2), (1, 1), (0, 0), (1, 1))):
            with pytest.raises(ForbiddenError):
                call()
    with forbid("torch.Tensor.unfold", rule=RULE):
        F.unfold(x, 2)
        with pytest.raises(ForbiddenError):
            x.unfold(2, 2, 1)


def test_a_kernel_with_another_name_is_refused() -> None:
    """Is F.conv2d refused also as torch.convolution (its kernel), and by-hand convolution allowed?"""
    x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 2, 2)
    with forbid("torch.nn.functional.conv2d", "torch.nn.Conv2d", rule="convolve with unfold and matmul"):
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1)
        by_hand = (patches * w[0, 0]).sum((-1, -2))
        for call in (lambda: F.conv2d(x, w), lambda: torch.conv2d(x, w), lambda: nn.Conv2d(1, 1, 2),
                     lambda: torch.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)):
            with pytest.raises(ForbiddenError):
                call()
    torch.testing.assert_close(by_hand, F.conv2d(x, w))


def test_forbidding_a_torch_module_refuses_its_functions_by_every_path() -> None:
    """Does forbidding torch.nn.functional refuse F.relu and torch.relu, leaving matmul and exp?"""
    x = torch.randn(3, 3)
    with forbid("torch.nn.functional", rule="no functional shortcuts"):
        (x @ x).exp().clamp(min=0).sum()
        for call in (lambda: F.relu(x), lambda: torch.relu(x), lambda: x.softmax(-1)):
            with pytest.raises(ForbiddenError):
                call()
    F.relu(x)


def test_a_function_compiled_before_the_block_is_still_refused(probs) -> None:
    """Is a torch.compile'd function that calls F.binary_cross_entropy refused inside the block?"""
    compiled = torch.compile(lambda p, y: F.binary_cross_entropy(p, y) * 2, backend="eager")
    compiled(*probs)
    with pytest.raises(ForbiddenError), forbid(BCE, rule=RULE):
        compiled(*probs)


def test_a_lazy_result_is_refused_when_recorded_inside_the_block(probs) -> None:
    """Is a returned object that calls the library only when converted refused if recorded inside?"""

    class Lazy:
        def __array__(self, dtype=None, copy=None):
            return F.binary_cross_entropy(*probs).numpy()

    with pytest.raises(ForbiddenError), forbid(BCE, rule=RULE):
        nncourse.record("bce", Lazy())


# --- Classes ------------------------------------------------------------------------------------


def test_a_forbidden_class_cannot_be_built() -> None:
    """Is nn.Linear refused when built directly or through a reference saved before the block?"""
    with forbid("torch.nn.Linear", rule="write the affine map yourself"):
        for build in (lambda: nn.Linear(3, 2), lambda: SAVED_LINEAR_CLASS(3, 2), lambda: nn.LazyLinear(2)):
            with pytest.raises(ForbiddenError):
                build()
    assert nn.Linear(3, 2)(torch.randn(1, 3)).shape == (1, 2)


def test_an_instance_made_before_the_block_cannot_be_called() -> None:
    """Is calling an nn.Linear made before the block (or its saved bound forward) refused?"""
    layer = nn.Linear(3, 2)
    saved_forward = layer.forward
    x = torch.randn(4, 3)
    with forbid("torch.nn.Linear", rule=RULE):
        with pytest.raises(ForbiddenError):
            layer(x)
        with pytest.raises(ForbiddenError):
            saved_forward(x)
        x @ layer.weight.T + layer.bias  # the parameters themselves are fine
    assert layer(x).shape == (4, 2)


def test_a_subclass_of_a_forbidden_class_is_refused() -> None:
    """Is `class MyLinear(nn.Linear): pass` refused, built inside or before the block?"""

    class MyLinear(nn.Linear):
        pass

    class SuperLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x)

    before = SuperLinear(3, 2)
    with forbid("torch.nn.Linear", rule=RULE):
        with pytest.raises(ForbiddenError):
            MyLinear(3, 2)
        with pytest.raises(ForbiddenError):
            before(torch.randn(1, 3))


def test_a_fresh_import_of_a_forbidden_class_module_is_refused() -> None:
    """Is importlib.reload of the module defining nn.Linear (which would build a new class) refused?"""
    module = sys.modules["torch.nn.modules.linear"]
    with pytest.raises(ForbiddenError), forbid("torch.nn.Linear", rule=RULE):
        importlib.reload(module)
    assert sys.modules["torch.nn.modules.linear"].Linear is nn.Linear


def test_ordinary_modules_and_parameters_work_inside() -> None:
    """Do nn.Parameter, other layers and ordinary tensor code work while nn.Linear is forbidden?"""
    with forbid("torch.nn.Linear", "torch.nn.functional.linear", rule=RULE):
        weight = nn.Parameter(torch.randn(2, 3))
        out = torch.relu(torch.randn(4, 3) @ weight.T).sum()
        nn.ReLU()(torch.randn(2))
        nn.Conv1d(1, 1, 2)(torch.randn(1, 1, 4))
    assert out.requires_grad  # grad mode is untouched when autograd is not forbidden


# --- Autograd -------------------------------------------------------------------------------------


def graph_loss(w: torch.Tensor) -> torch.Tensor:
    """A small loss that saves tensors for backward."""
    return (w.exp() * w).sum()


@pytest.mark.parametrize(
    "escape",
    [
        lambda w: graph_loss(w).backward(),
        lambda w: SAVED_BACKWARD(graph_loss(w)),
        lambda w: torch.autograd.grad(graph_loss(w), w),
        lambda w: SAVED_GRAD(graph_loss(w), w),
        lambda w: torch.autograd.backward(graph_loss(w)),
        lambda w: torch.enable_grad().__enter__(),
        lambda w: torch.set_grad_enabled(True),
        lambda w: torch._C._set_grad_enabled(True),
        lambda w: torch.func.grad(graph_loss)(w.detach()),
        lambda w: torch.func.vjp(graph_loss, w.detach()),
        lambda w: torch.func.jvp(graph_loss, (w.detach(),), (torch.ones(3),)),
        lambda w: torch.autograd.functional.jacobian(graph_loss, w.detach()),
    ],
    ids=["backward", "saved backward", "autograd.grad", "saved grad", "autograd.backward", "enable_grad",
         "set_grad_enabled", "_C._set_grad_enabled", "func.grad", "func.vjp", "func.jvp", "functional.jacobian"],
)
def test_every_path_to_autograd_is_refused(escape) -> None:
    """Is each route to a gradient refused, on a tensor that already requires grad?"""
    w = nn.Parameter(torch.randn(3))
    with pytest.raises(ForbiddenError), forbid("autograd", rule="compute the gradient by hand"):
        escape(w)
    assert torch.is_grad_enabled()


def test_requires_grad_inside_the_block_records_no_graph() -> None:
    """Does requires_grad_() inside the block leave results without a graph, and backward refused?"""
    with forbid("autograd", rule=RULE):
        w = torch.randn(3).requires_grad_()
        loss = graph_loss(w)
        assert loss.grad_fn is None
        with pytest.raises(ForbiddenError):
            loss.backward()


def test_a_graph_built_before_the_block_cannot_be_run_backward() -> None:
    """Is backward through a graph built before the block refused, even via the engine directly?"""
    w = nn.Parameter(torch.randn(3))
    loss = graph_loss(w)
    with pytest.raises(ForbiddenError), forbid("autograd", rule=RULE):
        torch.autograd.graph._engine_run_backward((loss,), (torch.ones(()),), False, False, (), False, True)
    assert w.grad is None


def test_forward_mode_autograd_is_refused() -> None:
    """Is forward-mode AD (dual numbers) refused, also when switched on by hand?"""
    import torch.autograd.forward_ad as fwAD

    with forbid("autograd", rule=RULE):
        with pytest.raises(ForbiddenError), fwAD.dual_level():
            fwAD.make_dual(torch.randn(3), torch.ones(3))
        with pytest.raises(ForbiddenError):
            torch._C._set_fwd_grad_enabled(True)
            torch.randn(3) * 2
    assert torch._C._is_fwd_grad_enabled()


def test_a_thread_cannot_run_torch_outside_the_guard(probs) -> None:
    """Is starting a thread (where torch's modes and grad mode do not reach) refused?"""
    with forbid(BCE, rule=RULE):
        with pytest.raises(ForbiddenError):
            threading.Thread(target=F.binary_cross_entropy, args=probs).start()
        with pytest.raises(ForbiddenError), ThreadPoolExecutor(1) as pool:
            pool.submit(F.binary_cross_entropy, *probs).result()
    worker = threading.Thread(target=time.sleep, args=(0,))
    worker.start()
    worker.join()


def test_a_process_cannot_run_outside_the_guard() -> None:
    """Are subprocess, os.system, os.fork and multiprocessing refused during the block, and fine after?"""
    with forbid(BCE, rule=RULE):
        for start in (lambda: subprocess.run(["true"]), lambda: os.system("true")):
            with pytest.raises(ForbiddenError):
                start()
    assert subprocess.run(["true"]).returncode == 0
    # os.fork is tried in a child Python, so that an escape forks that child, not pytest.
    probe = (
        "import os, multiprocessing, nncourse\n"
        "for start in (lambda: os.fork(), lambda: multiprocessing.get_context('spawn').Process(target=print).start()):\n"
        "    try:\n"
        "        with nncourse.forbid('autograd', rule='r'):\n"
        "            start()\n"
        "        print('escaped', flush=True)\n"
        "        os._exit(0)\n"
        "    except nncourse.ForbiddenError:\n"
        "        print('refused', flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["refused", "refused"], result.stderr


def test_ordinary_torch_code_runs_with_autograd_forbidden() -> None:
    """Do matmul, exp, log, clamp, reductions, indexing, printing and Parameters work without autograd?"""
    with forbid("autograd", rule=RULE):
        x = torch.randn(4, 3)
        w = nn.Parameter(torch.randn(3, 2))
        h = (x @ w).clamp(min=0).exp().log1p()
        grad_by_hand = x.T @ (h - h.mean(0))
        repr(grad_by_hand)
        torch.sigmoid(h[:, 0]).sum().item()
        with torch.no_grad():
            w -= 0.1 * grad_by_hand
    assert torch.is_grad_enabled()


# --- Python functions and modules outside torch (sklearn, NumPy) -----------------------------------


def test_a_forbidden_sklearn_function_is_refused_through_every_reference() -> None:
    """Is accuracy_score refused by its public path, its private module and a reference saved earlier?"""
    import sklearn.metrics
    from sklearn.metrics import _classification

    saved = sklearn.metrics.accuracy_score
    y = np.array([0, 1, 1, 0])
    with forbid("sklearn.metrics.accuracy_score", rule="count the matches yourself"):
        for call in (sklearn.metrics.accuracy_score, _classification.accuracy_score, saved,
                     getattr(saved, "__wrapped__", saved)):
            with pytest.raises(ForbiddenError):
                call(y, y)
        assert (y == y).mean() == 1.0
        sklearn.metrics.f1_score(y, y)  # only the named function is forbidden
    assert sklearn.metrics.accuracy_score(y, y) == 1.0


def test_a_forbidden_sklearn_module_refuses_all_its_functions() -> None:
    """Does forbidding sklearn.metrics refuse its functions, submodules, scorers and classes?"""
    import sklearn.metrics
    from sklearn.metrics import pairwise

    saved = sklearn.metrics.confusion_matrix
    y = np.array([0, 1, 1, 0])
    x = np.random.default_rng(0).normal(size=(3, 2))
    with forbid("sklearn.metrics", rule="count the confusion matrix yourself"):
        for call in (lambda: saved(y, y), lambda: sklearn.metrics.roc_auc_score(y, y),
                     lambda: pairwise.euclidean_distances(x), lambda: sklearn.metrics.get_scorer("accuracy"),
                     lambda: sklearn.metrics.ConfusionMatrixDisplay(np.eye(2))):
            with pytest.raises(ForbiddenError):
                call()
        np.bincount(2 * y + y, minlength=4)  # NumPy by hand is fine
    assert saved(y, y).tolist() == [[2, 0], [0, 2]]


def test_reloading_a_forbidden_sklearn_module_is_refused() -> None:
    """Is importlib.reload or a re-import after deleting it from sys.modules refused?"""
    import sklearn.metrics._classification as classification

    with forbid("sklearn.metrics", rule=RULE):
        with pytest.raises(ForbiddenError):
            importlib.reload(classification)
        saved = sys.modules.pop("sklearn.metrics._classification")
        try:
            with pytest.raises(ForbiddenError):
                importlib.import_module("sklearn.metrics._classification")
        finally:
            sys.modules["sklearn.metrics._classification"] = saved


def test_a_forbidden_sklearn_class_is_refused() -> None:
    """Is LogisticRegression refused when built inside or fitted from an instance made before?"""
    from sklearn.linear_model import LogisticRegression

    before = LogisticRegression()
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    with forbid("sklearn.linear_model.LogisticRegression", rule="fit it with gradient descent"):
        with pytest.raises(ForbiddenError):
            LogisticRegression()
        with pytest.raises(ForbiddenError):
            before.fit(x, y)
    assert before.fit(x, y).score(x, y) == 1.0


def test_a_library_not_imported_yet_is_left_unimported_and_its_import_refused(tmp_path, monkeypatch) -> None:
    """Is a forbidden library not imported when the guard is built, refused if imported inside, guarded after?"""
    (tmp_path / "shortcutlib").mkdir()
    (tmp_path / "shortcutlib" / "__init__.py").write_text("def shortcut(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    guard = forbid("shortcutlib.shortcut", rule="double it yourself")
    assert "shortcutlib" not in sys.modules
    with pytest.raises(ForbiddenError, match="import of shortcutlib"), guard:
        import shortcutlib  # noqa: F401
    assert "shortcutlib" not in sys.modules
    import shortcutlib

    saved = shortcutlib.shortcut
    try:
        with pytest.raises(ForbiddenError), guard:
            saved(1)
        assert saved(1) == 2
    finally:
        del sys.modules["shortcutlib"]


def test_a_numpy_python_function_is_refused() -> None:
    """Is numpy.corrcoef (an array-function dispatcher around Python code) refused?"""
    a = np.arange(4.0)
    with pytest.raises(ForbiddenError), forbid("numpy.corrcoef", rule="compute the correlation yourself"):
        np.corrcoef(a, a)
    assert np.corrcoef(a, a)[0, 1] == pytest.approx(1.0)


# --- Restoring, nesting, cost ------------------------------------------------------------------


def test_everything_is_restored_when_the_students_code_raises(probs) -> None:
    """After an exception inside the block, are modes, grad mode, code and patches all back?"""
    import sklearn.metrics

    code = sklearn.metrics.accuracy_score.__code__
    modes = (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack())
    meta_path = list(sys.meta_path)
    with pytest.raises(ZeroDivisionError):
        with forbid("autograd", BCE, "sklearn.metrics.accuracy_score", rule=RULE):
            1 / 0
    assert sklearn.metrics.accuracy_score.__code__ is code
    assert (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()) == modes
    assert sys.meta_path == meta_path
    assert torch.is_grad_enabled() and os.fork.__name__ == "fork"
    F.binary_cross_entropy(*probs)


def test_guards_nest_and_each_restores_its_own(probs) -> None:
    """Do nested guards (one inside the other, also the same guard twice) both apply and unwind?"""
    outer = forbid(BCE, rule="outer rule")
    with outer:
        with forbid("torch.sigmoid", "torch.nn.functional.binary_cross_entropy", rule="inner rule"):
            with pytest.raises(ForbiddenError, match="inner rule"):
                F.binary_cross_entropy(*probs)
            with pytest.raises(ForbiddenError):
                torch.sigmoid(probs[0])
        torch.sigmoid(probs[0])
        with outer:
            with pytest.raises(ForbiddenError, match="outer rule"):
                SAVED_BCE(*probs)
        with pytest.raises(ForbiddenError, match="outer rule"):
            SAVED_BCE(*probs)
    F.binary_cross_entropy(*probs)


def test_the_guard_is_cheap_to_enter(probs) -> None:
    """Does entering and leaving a built guard cost well under a few milliseconds?"""
    guard = forbid("autograd", BCE, "torch.nn.Linear", rule=RULE)
    start = time.perf_counter()
    for _ in range(20):
        with guard:
            by_hand_bce(*probs)
    assert (time.perf_counter() - start) / 20 < 0.02


def test_a_large_zero_copy_message_can_be_sent_inside_a_block():
    """pyzmq starts its garbage-collector thread on the first zero-copy send of 64 KiB or more
    (what a kernel does with a large record); the guard starts it beforehand instead of refusing it."""
    import zmq

    context = zmq.Context.instance()
    sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    sender.bind("inproc://guard-large-frame")
    receiver.connect("inproc://guard-large-frame")
    payload = bytes(200_000)
    try:
        with nncourse.forbid("torch.tanh", rule="tanh by hand"):
            sender.send(payload, copy=False)
        assert receiver.recv() == payload
    finally:
        sender.close(linger=0)
        receiver.close(linger=0)


def test_forbidding_a_module_with_an_enum_leaves_every_other_enum_working(tmp_path, monkeypatch) -> None:
    """An Enum class holds enum.Enum.__new__, shared by every Enum in the process: forbidding the
    module that defines it must not refuse signal.Signals(2) (a kernel's own lookups hang on it)."""
    import signal

    (tmp_path / "module_with_enum.py").write_text(
        "import enum\n\nclass Colour(enum.Enum):\n    RED = 1\n\n    def shade(self):\n        return 'dark'\n\n"
        "def helper(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("module_with_enum")
    with nncourse.forbid("module_with_enum", rule="no helper"):
        assert signal.Signals(2) is signal.SIGINT
        with pytest.raises(nncourse.ForbiddenError):
            module.helper(1)
        with pytest.raises(nncourse.ForbiddenError):
            module.Colour.RED.shade()
