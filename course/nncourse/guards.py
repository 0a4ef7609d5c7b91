"""Run a student's function with library shortcuts forbidden: ``forbid(*names, rule=...)``.

Where an exercise says "without autograd" or "without ``nn.Linear``", a test cell runs the
student's function inside the guard, so that the library call raises
:class:`ForbiddenError` with a message naming the rule and what was used::

    with nncourse.forbid("autograd", "torch.nn.functional.binary_cross_entropy",
                         rule="compute the BCE and its gradient by hand"):
        loss, grad = bce_and_grad(p, y)
        nncourse.record("bce of fixed p, y", loss, tol=1e-6)
        nncourse.record("its gradient in p", grad, tol=1e-6)

    with nncourse.forbid("torch.nn.Linear", "torch.nn.functional.linear",
                         rule="write the affine map x @ W.T + b yourself"):
        nncourse.record("affine map of fixed x", my_linear(x, W, b), tol=1e-6)

    with nncourse.forbid("sklearn.metrics", rule="count the confusion matrix yourself"):
        nncourse.record("confusion matrix", confusion(y_true, y_pred))

Two habits make the test tight:

- Record inside the block. A student's function could return an object that computes its
  value only when converted (``__array__``, ``__float__``), which ``record`` would do after
  the block, unguarded.
- Call the student's function only inside the block, on inputs that no earlier cell used. A
  function called unguarded first (a visible check outside the block, a demo cell) can
  remember the library's answer for those inputs and return it inside.

A name is the dotted path of a function, a class or a whole module (``"torch.cdist"``,
``"torch.nn.Linear"``, ``"torch.nn.utils.clip_grad_norm_"``, ``"sklearn.metrics"``,
``"numpy.linalg.lstsq"``), or ``"autograd"``: no autograd graph may be recorded and no
gradient computed (``backward``, ``torch.autograd.grad``, ``torch.func.grad``/``vjp``/``jvp``,
forward-mode AD). Outside the block everything works as before; the guard restores all it
changed on exit, also when the student's code raises, and guards nest (also a guard in
itself). Build a guard once per cell if you like: names are resolved once per process, and
entering costs about 0.1 ms, each torch op inside some 20-40 µs.

Name what the exercise forbids, and its siblings: a class forbids its own methods (building an
instance, calling one made earlier, a subclass that inherits them), not the function its
``forward`` calls, so "without ``nn.Linear``" names ``"torch.nn.Linear"`` and
``"torch.nn.functional.linear"``; ``"torch.nn.functional.binary_cross_entropy"`` also stops
``nn.BCELoss`` (which calls it) but not ``binary_cross_entropy_with_logits``, nor
``sklearn.metrics.log_loss``.

Names for common exercises (each line one ``forbid``):

- loss by hand: ``"torch.nn.functional.binary_cross_entropy"``,
  ``"torch.nn.functional.binary_cross_entropy_with_logits"`` (or ``cross_entropy``,
  ``nll_loss``, ``mse_loss``), plus ``"sklearn.metrics"`` where scikit-learn is around;
- layer by hand: ``"torch.nn.Linear"``, ``"torch.nn.functional.linear"``, ``"torch.addmm"``;
- activation by hand: ``"torch.sigmoid"`` (also ``F.sigmoid``, ``nn.Sigmoid``,
  ``special.expit``), ``"torch.softmax"`` (also ``F.softmax``, ``Tensor.softmax``);
- convolution by hand: ``"torch.nn.Conv2d"``, ``"torch.nn.functional.conv2d"``,
  ``"torch.nn.functional.unfold"`` (``Tensor.unfold`` stays allowed);
- distances by hand: ``"torch.cdist"``, ``"torch.nn.functional.pairwise_distance"``;
- backpropagation by hand: ``"autograd"``, plus the layers' and losses' names above.

How each kind of name is enforced (layers, so that one escape does not open the others):

- A torch function or op (``F.binary_cross_entropy``, ``torch.sigmoid``, ``torch.cdist``):
  by its op name, wherever it is reached from. A ``TorchFunctionMode`` refuses every torch
  call whose name matches, so ``F.x``, ``torch.x``, ``torch._C._nn.x``, ``torch.ops.aten.x``
  and the ``Tensor.x``/``x_`` methods are all refused, also through references saved before
  the block, copies of the function, or a fresh import of its module; a ``TorchDispatchMode``
  refuses the matching aten kernels (``aten::x``, ``aten::_x``, ``aten::_x_forward``), which
  catches the C++ paths below Python; a kernel with another name is listed in a table here
  (``F.conv2d`` runs ``aten::convolution``). Where a name is shared by another op
  (``F.unfold`` is im2col, ``Tensor.unfold`` a sliding window), a table in this module keeps
  the other one allowed. Python functions are also refused by swapping their ``__code__``
  for a raising one (see below), which covers torch functions that never reach the dispatcher
  under their own name, such as ``clip_grad_norm_``, and functions compiled with
  ``torch.compile`` before the block (they fall back to the refused Python code).
- A class (``nn.Linear``, ``sklearn.linear_model.LogisticRegression``): every method defined
  in its body has its ``__code__`` swapped, so constructing one, calling an instance made
  before the block, a subclass that inherits or ``super()``-calls them, and saved bound
  methods all raise; re-importing the module that defines it is refused.
- A Python function outside torch (``sklearn.metrics.accuracy_score``, ``numpy.corrcoef``):
  its ``__code__`` is swapped for the block (the same function object wherever it was
  imported or saved, and every function its ``__wrapped__`` chain leads to); re-importing its
  module is refused.
- A module (``"sklearn.metrics"``): every function and class method defined in it and its
  submodules (all imported when the guard is built; for a torch module, those already
  imported, its functions being refused by name), and an import of any of them during the
  block (``importlib.reload``, deleting it from ``sys.modules``) is refused.
- A library that is not imported yet when the guard is built (``"sklearn.metrics"`` in a
  notebook that never imported scikit-learn) is not imported by the guard (that can take
  seconds): no function of it exists yet, so importing it inside the block is refused, and
  once it is imported outside, the next entry guards its functions.
- ``"autograd"``: grad mode and forward-mode AD are switched off for the block and
  switching either back on is refused; ``Tensor.backward``, ``torch.autograd.grad``/
  ``backward``, ``torch.autograd.functional``, ``torch.func``'s transforms and
  ``forward_ad.make_dual`` raise; the dispatch mode refuses any op run while grad mode is on
  or while the autograd engine runs a backward pass (a graph built before the block), and a
  saved-tensors hook refuses any graph that saves a tensor (this one still holds when both
  modes have been popped). Creating an ``nn.Parameter`` and calling ``requires_grad_()``
  work; no graph is recorded.

The guards watch one another: the dispatch mode refuses ops run with torch functions
disabled (``torch._C.DisableTorchFunction``) or with the guard's function mode popped from
torch's mode stack, the function mode refuses calls made with the dispatch mode popped, and
both refuse tensor subclasses from outside torch (a student's ``__torch_function__`` would
run unguarded). A mode the student leaves pushed, or the guard's own removed, is undone and
reported as a ForbiddenError at exit. Starting a thread or a process is refused during the
block (torch's modes and grad mode are per thread; a new process imports fresh modules).

Escapes this guard does NOT close (record intermediate values, such as caches and
per-layer gradients, where they matter):

- Replacing the guard itself: an answer cell runs before the test cell, in the same kernel,
  and can rebind ``nncourse.forbid`` (or ``torch``'s mode machinery, or ``builtins``) to
  something that does nothing. Nothing inside one Python process prevents that; only the
  records (and hidden inputs) do.
- Code that takes the guard apart from inside: ``ctypes``, reading the original code objects
  out of this module's state, popping both of the guard's modes from torch's private mode
  stacks in one window with grad mode left off (torch calls then go unguarded), or calling
  references to ``_thread.start_new_thread``/``os.fork``/``_posixsubprocess.fork_exec``
  saved before the block, or an import finder put ahead of the guard's in ``sys.meta_path``
  inside the block (a re-import then goes through it).
- Code objects saved before the block: ``types.FunctionType(saved_code, globals)`` rebuilds
  a forbidden non-torch Python function or class method (torch functions are still refused
  by name).
- A library's source copied into the answer, or loaded under another module name
  (``importlib.util.spec_from_file_location``); for a class or a non-torch function this
  gives an unguarded copy.
- Compiled functions outside torch (NumPy ufuncs such as ``numpy.exp``, SciPy's
  ``special.expit``): the guard cannot see them, and refuses to be built with them.
- TorchScript (``torch.jit.script`` made before the block) and C++ extensions bypass the
  function mode: a composite torch function then runs as its parts (``F.linear`` as ``mm``),
  which the guard allows; forbidden ops with their own kernel (``binary_cross_entropy``,
  ``sigmoid``, ``_cdist_forward``) are still refused by the dispatch mode.
- Other libraries' versions of a forbidden thing are not implied (``scipy.spatial.distance.cdist``
  for ``torch.cdist``): name them too.
- ``torch.func`` transforms reached through their private implementations fail with torch's
  own RuntimeError (they refuse the guard's saved-tensors hook), not a ForbiddenError.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import sys
import threading
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["ForbiddenError", "Guard", "forbid"]

AUTOGRAD = "autograd"
"""The special name that forbids recording an autograd graph and computing gradients."""


class ForbiddenError(Exception):
    """A forbidden function, class, module or autograd was used inside :func:`forbid`.

    ``rule`` is the guard's rule (what the exercise asks), ``used`` what the code used.
    """

    def __init__(self, rule: str, used: str, forbidden: Iterable[str]) -> None:
        self.rule = rule
        self.used = used
        self.forbidden = tuple(forbidden)
        super().__init__(
            f"{rule} (this test forbids {', '.join(self.forbidden) or 'it'}; your code used {used}). "
            "Write that part yourself with basic operations."
        )


# --- What a name stands for -------------------------------------------------------------


def _resolve(name: str) -> Any:
    """The module, class or function a dotted path names, importing its module."""
    parts = name.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ValueError(f"forbid({name!r}): give a dotted path such as 'torch.nn.Linear' or 'autograd'")
    target: Any = None
    for end in range(len(parts), 0, -1):
        module_name = ".".join(parts[:end])
        try:
            target = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not module_name.startswith(error.name):
                raise
            continue
        break
    else:
        raise ValueError(f"forbid({name!r}): no module {parts[0]!r} is installed")
    for index in range(end, len(parts)):
        try:
            target = getattr(target, parts[index])
        except AttributeError:
            raise ValueError(
                f"forbid({name!r}): {'.'.join(parts[:index])} has no attribute {parts[index]!r}; "
                "check the spelling of the dotted path"
            ) from None
    return target


def _unloaded_module(name: str) -> str | None:
    """The first module on ``name``'s path not imported yet (outside torch), or ``None``.

    No function of a module that is not imported exists yet, so the guard need not import it
    (importing scikit-learn takes seconds): it refuses to import it during the block instead.
    """
    parts = name.split(".")
    if parts[0] == "torch" or name == AUTOGRAD:
        return None
    if parts[0] not in sys.modules:
        if importlib.util.find_spec(parts[0]) is None:
            raise ValueError(f"forbid({name!r}): no module {parts[0]!r} is installed")
        return parts[0]
    current: Any = sys.modules[parts[0]]
    for index in range(1, len(parts)):
        path = ".".join(parts[: index + 1])
        if path in sys.modules:
            current = sys.modules[path]
        elif isinstance(current, types.ModuleType) and parts[index] not in vars(current):
            return path
        else:
            return None
    return None


_NAME_SUFFIXES = ("_forward", "_nd", "_loss", "_legit", "_no_training", "_with_indices", "_")
_NAME_PREFIXES = ("_", "native_")


def _op_name(name: str) -> str:
    """The name shared by a function, its aten op and its Tensor methods.

    ``binary_cross_entropy.default``, ``_cdist_forward``, ``sigmoid_``, ``__matmul__`` and
    ``cross_entropy_loss`` become ``binary_cross_entropy``, ``cdist``, ``sigmoid``, ``matmul``
    and ``cross_entropy``.
    """
    name = name.split(".")[0]
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    changed = True
    while changed and name:
        changed = False
        for prefix in _NAME_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name, changed = name[len(prefix):], True
        for suffix in _NAME_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name, changed = name[: -len(suffix)], True
    return name


def _callable_name(func: Any) -> str:
    """The ``__name__`` of a function, builtin, method descriptor or aten op (``''`` if none)."""
    name = getattr(func, "__name__", "")
    return name if isinstance(name, str) else ""


def _describe(func: Any) -> str:
    """A readable dotted name for a callable, for error messages (``torch.relu``, ``Tensor.sigmoid``)."""
    name = _callable_name(func) or repr(func)
    if isinstance(func, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        return f"torch.ops.aten.{name}"
    qualname = getattr(func, "__qualname__", None) or name
    if qualname.startswith("_VariableFunctionsClass."):
        return f"torch.{name}"
    if qualname.startswith("TensorBase."):
        return "Tensor." + qualname.removeprefix("TensorBase.")
    module = getattr(func, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


def _functions_behind(obj: Any) -> list[types.FunctionType]:
    """The Python functions that run when ``obj`` is called: it and its ``__wrapped__`` chain."""
    found: list[types.FunctionType] = []
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        if isinstance(obj, staticmethod | classmethod | types.MethodType):
            obj = obj.__func__
        implementation = getattr(obj, "_implementation", None)  # NumPy's array-function dispatch
        if isinstance(obj, types.FunctionType):
            found.append(obj)
        elif isinstance(implementation, types.FunctionType):
            found.append(implementation)
        obj = getattr(obj, "__wrapped__", None)
    return found


def _methods_of(cls: type) -> list[types.FunctionType]:
    """The Python functions defined in a class's own body (methods, properties, static ones).

    Functions of other modules that a class holds are left out: an Enum class holds
    ``enum.Enum.__new__``, which every Enum in the process shares (``signal.Signals(2)``)."""
    found: list[types.FunctionType] = []
    for value in vars(cls).values():
        if isinstance(value, property):
            parts: list[Any] = [value.fget, value.fset, value.fdel]
        elif isinstance(value, functools.cached_property):
            parts = [value.func]
        else:
            parts = [value]
        for part in parts:
            found.extend(f for f in _functions_behind(part) if getattr(f, "__module__", None) == cls.__module__)
    return found


def _submodules(module: types.ModuleType) -> list[types.ModuleType]:
    """``module`` and all its submodules, imported now (test packages left out).

    torch's are not imported (``torch.nn`` alone has hundreds): its functions are refused by
    name anyway, and a submodule not imported yet may not be imported during the block.
    """
    if hasattr(module, "__path__") and module.__name__.split(".")[0] != "torch":
        for info in pkgutil.walk_packages(module.__path__, module.__name__ + ".", onerror=lambda _: None):
            if "tests" in info.name.split(".") or info.name.rsplit(".", 1)[-1] == "conftest":
                continue
            try:
                importlib.import_module(info.name)
            except Exception:  # an optional dependency missing: nothing to forbid there
                continue
    prefix = module.__name__ + "."
    return [module] + [m for n, m in sorted(sys.modules.items()) if n.startswith(prefix) and m is not None]


# The autograd entry points refused by name (their code swapped) when "autograd" is forbidden.
_AUTOGRAD_FUNCTIONS = (
    "torch.Tensor.backward",
    "torch.autograd.backward",
    "torch.autograd.grad",
    "torch.autograd.functional.jacobian",
    "torch.autograd.functional.hessian",
    "torch.autograd.functional.vjp",
    "torch.autograd.functional.jvp",
    "torch.autograd.functional.hvp",
    "torch.autograd.functional.vhp",
    "torch.autograd.forward_ad.make_dual",
    "torch.func.grad",
    "torch.func.grad_and_value",
    "torch.func.vjp",
    "torch.func.jvp",
    "torch.func.jacrev",
    "torch.func.jacfwd",
    "torch.func.hessian",
    "torch.func.linearize",
)


# Torch functions that share a name with a different op. The function mode matches calls by
# name, so these list the op the function really runs (for the dispatch mode) and the
# same-named callables that stay allowed: forbidding F.unfold (im2col) must leave
# Tensor.unfold (sliding windows, the by-hand tool for a convolution) usable, and back.
_SAME_NAME_OTHER_OP: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "torch.nn.functional.unfold": (("im2col",), ("torch.Tensor.unfold", "torch.ops.aten.unfold")),
    "torch.nn.functional.fold": (("col2im",), ()),
    "torch.Tensor.unfold": (("unfold",), ("torch.nn.functional.unfold",)),
}


# Torch functions whose kernel has another name (as :func:`_op_name` gives both): the kernel
# is refused too, when called directly (``torch.convolution``) or reached below Python.
_KERNELS: dict[str, tuple[str, ...]] = {
    **{f"conv{kind}{n}d": ("convolution",) for kind in ("", "_transpose") for n in (1, 2, 3)},
    "logsigmoid": ("log_sigmoid",),
    "scaled_dot_product_attention": (
        "scaled_dot_product_flash_attention_for_cpu",
        "scaled_dot_product_flash_attention",
        "scaled_dot_product_efficient_attention",
        "scaled_dot_product_cudnn_attention",
        "scaled_dot_product_attention_math",
    ),
}


@dataclass(frozen=True)
class _Plan:
    """What one set of names forbids, worked out once per set (see :func:`_plan_for`).

    ``call_names`` are matched against torch calls (function mode), ``op_names`` against aten
    ops (dispatch mode), both as :func:`_op_name` gives them; ``exempt`` holds the ids of
    same-named callables that are a different op. ``modules`` may not be imported during the
    block; ``pending`` are those of them not imported when the plan was made.
    """

    forbidden: tuple[str, ...]
    autograd: bool = False
    call_names: frozenset[str] = frozenset()
    op_names: frozenset[str] = frozenset()
    exempt: frozenset[int] = frozenset()
    functions: tuple[types.FunctionType, ...] = ()
    labels: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    keep_alive: tuple[Any, ...] = ()


def _current_plan(names: tuple[str, ...]) -> _Plan:
    """The plan for ``names`` given which of their libraries are imported now."""
    unloaded = tuple((name, module) for name in names if (module := _unloaded_module(name)))
    return _plan_for(names, unloaded)


def _call_identity(func: Any) -> Any:
    """What the function mode compares with ``exempt``: an aten overload's packet, else ``func``."""
    return func.overloadpacket if isinstance(func, torch._ops.OpOverload) else func


@functools.lru_cache(maxsize=128)
def _plan_for(names: tuple[str, ...], unloaded: tuple[tuple[str, str], ...] = ()) -> _Plan:
    """Resolve each name into torch op names, Python functions and modules to guard.

    ``unloaded`` pairs names with the module on their path that is not imported yet: such a
    name is not resolved, its module's import is refused during the block.
    """
    not_imported = dict(unloaded)
    autograd = False
    call_names: set[str] = set()
    op_names: set[str] = set()
    exempt: list[Any] = []
    functions: dict[int, tuple[types.FunctionType, str]] = {}
    modules: set[str] = set()

    def add_functions(found: Iterable[types.FunctionType], label: str) -> None:
        for function in found:
            functions.setdefault(id(function), (function, label))

    def add_class(cls: type, label: str) -> None:
        add_functions(_methods_of(cls), label)
        modules.add(cls.__module__)

    def add_torch_callable(path: str, target: Any) -> None:
        if path in _SAME_NAME_OTHER_OP:
            ops, allowed = _SAME_NAME_OTHER_OP[path]
            call_names.update({_op_name(path.rsplit(".", 1)[-1]), *ops})
            op_names.update(ops)
            exempt.extend(_resolve(other) for other in allowed)
            return
        found = {_op_name(path.rsplit(".", 1)[-1]), _op_name(_callable_name(target))} - {""}
        found.update(kernel for name in tuple(found) for kernel in _KERNELS.get(name, ()))
        call_names.update(found)
        op_names.update(found)

    for name in names:
        if name == AUTOGRAD:
            autograd = True
            for path in _AUTOGRAD_FUNCTIONS:
                add_functions(_functions_behind(_resolve(path)), path)
            continue
        if name in not_imported:
            modules.add(not_imported[name])
            continue
        target = _resolve(name)
        in_torch = name.split(".")[0] == "torch"
        if isinstance(target, types.ModuleType):
            for module in _submodules(target):
                for attribute, value in vars(module).items():
                    origin = getattr(value, "__module__", None)
                    origin = origin if isinstance(origin, str) else ""
                    if attribute.startswith("_") or isinstance(value, types.ModuleType) or not callable(value):
                        continue
                    if isinstance(value, type):
                        if origin.startswith(target.__name__):
                            add_class(value, f"{origin}.{value.__qualname__}")
                        continue
                    if in_torch and origin.split(".")[0] == "torch":
                        add_torch_callable(f"{module.__name__}.{attribute}", value)
                    if origin.startswith(target.__name__):
                        add_functions(_functions_behind(value), f"{module.__name__}.{attribute}")
            modules.add(target.__name__)
        elif isinstance(target, type):
            add_class(target, name)
        elif callable(target):
            behind = _functions_behind(target)
            if in_torch:
                add_torch_callable(name, target)
            elif not behind:
                raise ValueError(
                    f"forbid({name!r}): {name} is compiled code ({type(target).__name__}) that the "
                    "guard cannot watch outside torch; record intermediate values instead"
                )
            else:
                modules.update(function.__module__ for function in behind if function.__module__)
            add_functions(behind, name)
        else:
            raise ValueError(f"forbid({name!r}): {name} is a {type(target).__name__}, not a function, class or module")
    ordered = list(functions.values())
    return _Plan(
        forbidden=names,
        autograd=autograd,
        call_names=frozenset(call_names),
        op_names=frozenset(op_names),
        exempt=frozenset(id(callable_) for callable_ in exempt),
        functions=tuple(function for function, _ in ordered),
        labels=tuple(label for _, label in ordered),
        modules=tuple(sorted(modules)),
        pending=tuple(sorted(set(not_imported.values()))),
        keep_alive=tuple(exempt),
    )


# --- Swapping a Python function's code ----------------------------------------------------


@dataclass
class _Swap:
    """One function whose ``__code__`` is the raiser while any guard forbids it."""

    function: types.FunctionType
    original: types.CodeType
    label: str
    guards: list[_Entry] = field(default_factory=list)


_SWAPS: dict[int, _Swap] = {}
_SWAP_LOCK = threading.RLock()


@functools.lru_cache(maxsize=None)
def _raiser_code(function: types.FunctionType) -> types.CodeType:
    """Code that refuses the call, to put in ``function.__code__`` while it is forbidden.

    A function's ``__code__`` can only be replaced by code with the same free variables as its
    closure has cells, so the raiser names the same ones (CPython orders them by name). It
    finds the rule through this module, by the function's id (the cache keeps it alive).
    """
    original = function.__code__
    cells = "".join(f"    {var} = None\n" for var in original.co_freevars)
    touches = "".join(f"        {var}\n" for var in original.co_freevars)
    source = (
        "def _outer():\n"
        f"{cells}"
        "    def refused(*_nncourse_args, **_nncourse_kwargs):\n"
        f"{touches}"
        "        import nncourse.guards as _nncourse_guards\n"
        f"        raise _nncourse_guards._refusal({id(function)})\n"
        "    return refused\n"
    )
    label = f"{function.__module__}.{function.__qualname__}"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<nncourse.forbid refuses {label}>", "exec"), namespace)
    code: types.CodeType = namespace["_outer"]().__code__
    if code.co_freevars != original.co_freevars:
        raise RuntimeError(f"nncourse.forbid cannot guard {label}: its free variables are not in name order")
    return code.replace(co_name=original.co_name, co_qualname=original.co_qualname)


def _refusal(key: int) -> ForbiddenError:
    """The error a swapped function raises: the rule of the innermost guard forbidding it."""
    swap = _SWAPS.get(key)
    if swap is None or not swap.guards:  # a stale raiser: should not happen
        return ForbiddenError("this function is forbidden here", f"function #{key}", ())
    entry = swap.guards[-1]
    return entry.refusal(swap.label)


def _swap_in(function: types.FunctionType, label: str, entry: _Entry) -> None:
    """Make ``function`` raise for ``entry`` (nested guards share one swap)."""
    with _SWAP_LOCK:
        swap = _SWAPS.get(id(function))
        if swap is None:
            raiser = _raiser_code(function)
            swap = _SWAPS[id(function)] = _Swap(function, function.__code__, label)
            function.__code__ = raiser
        swap.guards.append(entry)


def _swap_out(function: types.FunctionType, entry: _Entry) -> None:
    """Undo :func:`_swap_in`; the original code returns when no guard forbids it any more."""
    with _SWAP_LOCK:
        swap = _SWAPS[id(function)]
        swap.guards.remove(entry)
        if not swap.guards:
            function.__code__ = swap.original
            del _SWAPS[id(function)]


# --- Threads, processes and re-imports ----------------------------------------------------

# Compiled functions that start a thread or a process, replaced by a refusing stub (module
# attribute) during the block; threading.Thread.start (Python) has its code swapped instead.
_STARTERS = (
    ("_thread", "start_new_thread"),
    ("_thread", "start_new"),
    ("_thread", "start_joinable_thread"),
    ("threading", "_start_new_thread"),
    ("threading", "_start_joinable_thread"),
    ("os", "fork"),
    ("os", "forkpty"),
    ("os", "posix_spawn"),
    ("os", "posix_spawnp"),
    ("os", "system"),
    ("posix", "fork"),
    ("posix", "forkpty"),
    ("posix", "posix_spawn"),
    ("posix", "posix_spawnp"),
    ("posix", "system"),
    ("_posixsubprocess", "fork_exec"),
    ("subprocess", "_fork_exec"),
)

_ACTIVE: list[_Entry] = []
"""The entries of all guards now active, innermost last (process-wide, like the patches)."""

_PATCHED: dict[tuple[str, str], Any] = {}


def _refuse_start(*args: Any, **kwargs: Any) -> None:
    """Stands in for a thread or process starter while a guard is active."""
    entry = _ACTIVE[-1] if _ACTIVE else None
    if entry is None:
        raise ForbiddenError("no threads or processes here", "a thread or process starter", ())
    raise entry.refusal("a new thread or process (the guard watches this thread only)")


def _start_helper_threads() -> None:
    """Start, before the starters are refused, the threads the kernel itself starts on demand:
    pyzmq's garbage collector, started the first time a frame of 64 KiB or more is sent without a
    copy (a record of a few thousand floats). Refused inside a block, it left that message
    half-sent and the notebook broken."""
    zmq_garbage = sys.modules.get("zmq.utils.garbage")
    if zmq_garbage is None and "zmq" in sys.modules:
        zmq_garbage = importlib.import_module("zmq.utils.garbage")
    collector = getattr(zmq_garbage, "gc", None)
    if collector is not None and not collector.is_alive():
        collector.start()


def _patch_starters() -> None:
    """Replace the thread and process starters (first active guard only)."""
    for module_name, attribute in _STARTERS:
        try:  # imported now, or an import inside the block would bring an unpatched one
            module = importlib.import_module(module_name)
        except ImportError:  # not on this platform
            continue
        if hasattr(module, attribute):
            _PATCHED[(module_name, attribute)] = getattr(module, attribute)
            setattr(module, attribute, _refuse_start)


def _restore_starters() -> None:
    """Put the thread and process starters back (last active guard only)."""
    for (module_name, attribute), original in _PATCHED.items():
        setattr(sys.modules[module_name], attribute, original)
    _PATCHED.clear()


class _ReimportBlocker:
    """Refuses to import a guarded module again (``importlib.reload``, ``del sys.modules[...]``).

    A fresh import would build fresh, unguarded functions and classes.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        """Raise :class:`ForbiddenError` for a guarded module or its submodules, else ``None``."""
        for entry in reversed(_ACTIVE):
            for module in entry.plan.modules:
                if fullname == module or fullname.startswith(module + "."):
                    if module in entry.plan.pending:
                        raise entry.refusal(f"an import of {fullname} (a library first imported inside "
                                            "the test, where the guard cannot watch it)")
                    raise entry.refusal(f"a fresh import of {fullname}")
        return None


_REIMPORT_BLOCKER = _ReimportBlocker()


# --- The torch modes -----------------------------------------------------------------------


def _is_torch_type(cls: type) -> bool:
    """Whether a tensor type comes from torch (``Tensor``, ``nn.Parameter``), not from the student."""
    return (getattr(cls, "__module__", None) or "").split(".")[0] == "torch"


class _FunctionGuard(TorchFunctionMode):
    """Refuses forbidden torch calls, seen by name at the Python level (any path to them)."""

    def __init__(self, entry: _Entry) -> None:
        super().__init__()
        self.entry = entry
        self.depth = 0

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        """Check ``func`` against the guard, then run it (the guard's mode is off meanwhile)."""
        self.entry.check_function(func, types, args)
        self.depth += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.depth -= 1


class _DispatchGuard(TorchDispatchMode):
    """Refuses forbidden aten ops and autograd at the dispatcher (C++ paths included)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Else torch wraps __torch_dispatch__ in torch._dynamo.disable, and the first op
        # imports torch._dynamo (800 modules, about 2 s): the guard never runs under dynamo.
        return False

    def __init__(self, entry: _Entry) -> None:
        super().__init__()
        self.entry = entry
        self.depth = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        """Check the op against the guard, then run it."""
        self.entry.check_op(func, types)
        self.depth += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.depth -= 1


def _function_modes() -> list[Any]:
    return [torch._C._get_function_stack_at(i) for i in range(torch._C._len_torch_function_stack())]


def _dispatch_modes() -> list[Any]:
    return [torch._C._get_dispatch_stack_at(i) for i in range(torch._C._len_torch_dispatch_stack())]


def _refuse_saved_tensor(_tensor: torch.Tensor) -> Any:
    """Pack hook: an autograd graph is saving a tensor, so autograd is being recorded."""
    entry = _ACTIVE[-1] if _ACTIVE else None
    raise (entry.refusal("an autograd graph (an op recorded for backward)") if entry else
           ForbiddenError("autograd is forbidden here", "an autograd graph", ("autograd",)))


def _unpack_saved_tensor(tensor: Any) -> Any:
    return tensor


# --- One active guard ---------------------------------------------------------------------


class _Entry:
    """One entry into a :class:`Guard`: what it forbids and what to restore on exit."""

    def __init__(self, plan: _Plan, rule: str) -> None:
        self.plan = plan
        self.rule = rule
        self.uses_torch = bool(plan.call_names) or plan.autograd
        self.function_mode = _FunctionGuard(self)
        self.dispatch_mode = _DispatchGuard(self)
        self.undo: list[Callable[[], None]] = []
        self.tampering: list[str] = []

    def refusal(self, used: str) -> ForbiddenError:
        """The error for a forbidden use, naming the rule and what was used."""
        return ForbiddenError(self.rule, used, self.plan.forbidden)

    # Checks, called by the modes before each torch call and each aten op.

    def _check_types(self, types: Iterable[type]) -> None:
        for cls in types:
            if not _is_torch_type(cls):
                raise self.refusal(f"a tensor subclass of your own ({cls.__qualname__}), which could run "
                                   "torch calls unguarded")

    def _check_grad_mode(self) -> None:
        if torch.is_grad_enabled():
            raise self.refusal("autograd (grad mode was switched on, e.g. by torch.enable_grad)")
        if torch._C._is_fwd_grad_enabled():
            raise self.refusal("forward-mode autograd (it was switched on)")

    def check_function(self, func: Any, types: Iterable[type], args: tuple[Any, ...]) -> None:
        """Refuse a torch call that is forbidden, or made with the dispatch guard removed."""
        self._check_types(types)
        if self.dispatch_mode.depth == 0 and not any(m is self.dispatch_mode for m in _dispatch_modes()):
            raise self.refusal("a torch call with the guard's dispatch mode removed")
        name = _callable_name(func)
        if name in ("__get__", "__set__"):
            name = _callable_name(getattr(func, "__self__", None))
        if self.plan.autograd:
            if name == "_set_grad_enabled" and args and args[0]:
                raise self.refusal("autograd (switching grad mode on)")
            self._check_grad_mode()
        if _op_name(name) in self.plan.call_names and id(_call_identity(func)) not in self.plan.exempt:
            raise self.refusal(_describe(func))

    def check_op(self, func: Any, types: Iterable[type]) -> None:
        """Refuse an aten op that is forbidden, or run with the function guard bypassed."""
        self._check_types(types)
        if torch._C._is_torch_function_all_disabled():
            raise self.refusal("torch calls with torch functions disabled (torch._C.DisableTorchFunction)")
        if self.function_mode.depth == 0 and not any(m is self.function_mode for m in _function_modes()):
            raise self.refusal("torch calls with the guard's function mode removed")
        if self.plan.autograd:
            self._check_grad_mode()
            if torch._C._current_autograd_node() is not None:
                raise self.refusal("autograd (a backward pass through a graph built earlier)")
        if _op_name(_callable_name(func)) in self.plan.op_names:
            raise self.refusal(f"torch.ops.aten.{_callable_name(func)}")

    # Entering and leaving.

    def enter(self) -> None:
        """Forbid: swap code, patch starters, block re-imports, switch autograd off, push modes."""
        _start_helper_threads()
        for function, label in zip(self.plan.functions, self.plan.labels, strict=True):
            _swap_in(function, label, self)
            self.undo.append(functools.partial(_swap_out, function, self))
        _swap_in(threading.Thread.start, "threading.Thread.start (a new thread)", self)
        self.undo.append(functools.partial(_swap_out, threading.Thread.start, self))
        if not _ACTIVE:
            _patch_starters()
            sys.meta_path.insert(0, _REIMPORT_BLOCKER)
        _ACTIVE.append(self)
        self.undo.append(self._deactivate)
        if self.plan.autograd:
            grad, forward_grad = torch.is_grad_enabled(), torch._C._is_fwd_grad_enabled()
            torch._C._set_grad_enabled(False)
            torch._C._set_fwd_grad_enabled(False)
            self.undo.append(lambda: (torch._C._set_grad_enabled(grad), torch._C._set_fwd_grad_enabled(forward_grad)))
            hooks = torch.autograd.graph.saved_tensors_hooks(_refuse_saved_tensor, _unpack_saved_tensor)
            hooks.__enter__()
            self.undo.append(lambda: hooks.__exit__(None, None, None))
        if self.uses_torch:
            self.dispatch_mode.__enter__()
            self.undo.append(self._pop_dispatch_mode)
            self.function_mode.__enter__()
            self.undo.append(self._pop_function_mode)

    def exit(self) -> list[str]:
        """Restore everything in reverse order, each step even if another fails; say what was tampered with."""
        errors: list[BaseException] = []
        while self.undo:
            try:
                self.undo.pop()()
            except BaseException as error:  # keep restoring; report the first failure after
                errors.append(error)
        if errors:
            raise errors[0]
        return self.tampering

    def _deactivate(self) -> None:
        _ACTIVE.remove(self)
        if not _ACTIVE:
            _restore_starters()
            if _REIMPORT_BLOCKER in sys.meta_path:
                sys.meta_path.remove(_REIMPORT_BLOCKER)
            else:
                self.tampering.append("the guard's import blocker was removed from sys.meta_path")

    def _pop_function_mode(self) -> None:
        if not any(m is self.function_mode for m in _function_modes()):
            self.tampering.append("the guard's torch function mode was removed")
            return
        while (top := torch._C._pop_torch_function_stack()) is not self.function_mode:
            self.tampering.append(f"a torch function mode was left on ({type(top).__name__})")

    def _pop_dispatch_mode(self) -> None:
        if not any(m is self.dispatch_mode for m in _dispatch_modes()):
            self.tampering.append("the guard's torch dispatch mode was removed")
            torch._C._push_on_torch_dispatch_stack(self.dispatch_mode)
        while _dispatch_modes()[-1] is not self.dispatch_mode:
            top = torch._C._pop_torch_dispatch_stack(None)
            self.tampering.append(f"a torch dispatch mode was left on ({type(top).__name__})")
        self.dispatch_mode.__exit__(None, None, None)


class Guard:
    """The context manager :func:`forbid` returns; see the module's documentation.

    It can be entered again (also nested in itself); each entry builds nothing new, the
    names being resolved once per set of names and process.
    """

    def __init__(self, names: tuple[str, ...], rule: str) -> None:
        if not names:
            raise ValueError("forbid(...) needs at least one name, such as 'autograd' or 'torch.nn.Linear'")
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"forbid(...) takes dotted names as strings, not {type(name).__name__} ({name!r})")
        if not isinstance(rule, str) or not rule.strip():
            raise ValueError("forbid(..., rule=...) needs the rule the student reads, such as "
                             "'compute the loss by hand'")
        self.names = names
        self.rule = rule
        self.plan = _current_plan(names)
        self._entries: list[_Entry] = []

    def __repr__(self) -> str:
        return f"forbid({', '.join(map(repr, self.names))}, rule={self.rule!r})"

    def __enter__(self) -> Guard:
        if any(module in sys.modules for module in self.plan.pending):
            self.plan = _current_plan(self.names)  # a library imported since: guard its functions
        entry = _Entry(self.plan, self.rule)
        try:
            entry.enter()
        except BaseException:
            entry.exit()
            raise
        self._entries.append(entry)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        tampering = self._entries.pop().exit()
        if tampering and exc_type is None:
            raise ForbiddenError(self.rule, "changes to the guard itself: " + "; ".join(tampering), self.names)


def forbid(*names: str, rule: str) -> Guard:
    """A context manager in which the named functions, classes, modules or autograd raise.

    ``names`` are dotted paths (``"torch.nn.functional.binary_cross_entropy"``,
    ``"torch.nn.Linear"``, ``"sklearn.metrics"``) or ``"autograd"``; ``rule`` is what the
    student reads in the :class:`ForbiddenError`, such as "compute the BCE by hand". A name
    that does not resolve raises ``ValueError`` at once. See the module's documentation for
    what is enforced and how.
    """
    return Guard(tuple(names), rule)
