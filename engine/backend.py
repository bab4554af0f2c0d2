"""Backend selection: which kernels the engine calls and which array module holds data.

Only "numpy" exists so far; the CUDA and emulator backends plug in here with the same
kernel signatures (kernels.OPS).
"""
import os
from types import SimpleNamespace

import numpy as np

import kernels

_BACKENDS = {"numpy": SimpleNamespace(name="numpy", xp=np, ops=kernels.numpy_ops)}
_current = None


def available_backends():
    return tuple(_BACKENDS)


def set_backend(name):
    """Selects the backend every later operation runs on ("numpy"; "auto" picks the best)."""
    global _current
    if name == "auto":
        name = "numpy"
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(available_backends())} or 'auto'")
    _current = _BACKENDS[name]


def get_backend():
    return current().name


def current():
    if _current is None:
        set_backend(os.environ.get("DEEPINSIDE_BACKEND", "auto"))
    return _current
