"""Tensors out of a whole pickled module (the authors' encoder and lighting files) without
running anything from the file.

`torch.save(model)` pickles the module object itself: to rebuild it, pickle imports the classes
the file names (`inference.encoders.ResNetEncoder`, ...) and calls what the file says, which is
how a pickle runs code. `weights_only=True` refuses such files outright. This reader hands out
an inert stand-in for every name the file asks for, except the few torch functions that rebuild
tensors and parameters and a handful of plain containers. A stand-in is never run: creating
an object from it (pickle's NEWOBJ, how modules are saved) makes an empty record that the file's
attributes are written into; CALLING it (pickle's REDUCE, how a payload such as `os.system(...)`
runs) is refused with `UnsafeFileError`. Storages are read by torch's own loader, as usual.

    tensors, classes = read_module_tensors("best_model.pth")
    tensors["backbone.fc.0.weight"]      # the module's state_dict, by its usual names
    classes[""]                           # "inference.encoders.ResNetEncoder": the root's class
"""

from __future__ import annotations

import collections
import pickle
import types
from typing import Any

import torch

# Functions and types a module pickle needs that run nothing of the file's.
SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}


class UnsafeFileError(pickle.UnpicklingError, ValueError):
    """The file asks to call something that is not a tensor rebuild: refused, nothing ran."""


class StandIn:
    """An inert record standing in for an object of a class the file names."""

    origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "StandIn":  # pickle's NEWOBJ: no code of the file runs
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pickle's REDUCE: a call, refused
        raise UnsafeFileError(f"the file calls {self.origin}(...); only tensor data is read, so it is refused")

    def __repr__(self) -> str:
        return f"<stand-in for {self.origin}>"


def _dtype(module: str, name: str) -> Any:
    value = getattr(torch, name, None) if module == "torch" else None
    return value if isinstance(value, torch.dtype) else None


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals are `SAFE_GLOBALS`, torch dtypes, or stand-ins."""

    _stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = {"__builtin__": "builtins"}.get(module, module)  # protocol 2 writes Python 2's name
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[(module, name)]
        dtype = _dtype(module, name)
        if dtype is not None:
            return dtype
        origin = f"{module}.{name}"
        if origin not in self._stand_ins:
            self._stand_ins[origin] = type(name, (StandIn,), {"origin": origin, "__module__": __name__})
        return self._stand_ins[origin]


def _load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load's `pickle_module` needs: torch's own storage handling wraps this Unpickler.
restricted_pickle = types.SimpleNamespace(Unpickler=RestrictedUnpickler, load=_load,
                                          UnpicklingError=pickle.UnpicklingError, __name__="restricted_pickle")


def _walk(obj: Any, prefix: str, tensors: dict[str, torch.Tensor], classes: dict[str, str]) -> None:
    if not isinstance(obj, StandIn):
        return
    classes[prefix.rstrip(".")] = obj.origin
    state = vars(obj)
    skip = state.get("_non_persistent_buffers_set") or set()
    for table in ("_parameters", "_buffers"):
        for name, value in (state.get(table) or {}).items():
            if isinstance(value, torch.Tensor) and name not in skip:
                tensors[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        _walk(child, f"{prefix}{name}.", tensors, classes)


def read_module_tensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, {module path: class name}) of a `torch.save(module)` file, nothing run.

    Raises `UnsafeFileError` for a file that calls anything but a tensor rebuild, and
    `ValueError` naming the file when it holds no module."""
    try:
        # weights_only=False only because that mode refuses module files; RestrictedUnpickler
        # is the guard (see the module docstring).
        root = torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except UnsafeFileError as e:
        raise UnsafeFileError(f"{path}: {e}") from None
    tensors: dict[str, torch.Tensor] = {}
    classes: dict[str, str] = {}
    if isinstance(root, dict) and all(isinstance(v, torch.Tensor) for v in root.values()):
        return dict(root), {"": "state_dict"}
    _walk(root, "", tensors, classes)
    if not tensors:
        raise ValueError(f"{path}: holds no module with tensors (found {type(root).__name__})")
    return tensors, classes
