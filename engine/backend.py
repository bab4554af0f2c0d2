"""Backend selection: which kernels the engine calls and which array module holds data.

    numpy     the NumPy reference path (kernels/*.py), on the CPU
    cuda      our CUDA kernels (kernels/*.cu) through CuPy on a GPU
    emulator  the same CUDA kernels compiled for the CPU and run by our emulator, on NumPy
              arrays: slow, but it is how the kernels are tested without a GPU
    auto      cuda where a GPU is usable, else numpy

All backends provide the same kernel functions (kernels.OPS) with the same signatures.
"""
import os
from types import SimpleNamespace

import numpy as np

from .. import kernels

NAMES = ("numpy", "cuda", "emulator")
_built = {"numpy": SimpleNamespace(name="numpy", xp=np, ops=kernels.numpy_ops)}
_current = None


def available_backends():
    return NAMES


def _build(name):
    from ..kernels.gpu_ops import make_ops
    from ..kernels.launch import CudaLauncher, EmulatorLauncher

    launcher = CudaLauncher() if name == "cuda" else EmulatorLauncher()
    return SimpleNamespace(name=name, xp=launcher.xp, ops=make_ops(launcher), launcher=launcher)


def set_backend(name):
    """Selects the backend every later operation runs on: numpy, cuda, emulator or auto."""
    global _current
    if name == "auto":
        from ..kernels.launch import cuda_available
        name = "cuda" if cuda_available() else "numpy"
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(NAMES)} or 'auto'")
    if name not in _built:
        from ..kernels.launch import KernelError
        try:
            _built[name] = _build(name)
        except KernelError as error:
            raise ValueError(str(error)) from None
    _current = _built[name]


def get_backend():
    return current().name


def current():
    if _current is None:
        set_backend(os.environ.get("DEEPINSIDE_BACKEND", "auto"))
    return _current


def to_numpy(array):
    """A NumPy copy of a backend array (CuPy arrays live on the GPU)."""
    return array if isinstance(array, np.ndarray) else array.get()
