"""Backends: where a tensor's data lives and which kernels run on it.

    numpy     the NumPy reference path (kernels/*.py), on the CPU
    cuda      our CUDA kernels (kernels/*.cu) through CuPy on a GPU
    emulator  the same CUDA kernels compiled for the CPU and run by our emulator, on NumPy
              arrays: slow, but it is how the kernels are tested without a GPU
    auto      cuda where a GPU is usable, else numpy

A tensor carries its backend (`tensor.backend`), and an operation runs on the backend its
operands share: operands on different backends are refused with a message, never copied
behind the user's back. New tensors, a network's new parameters among them, go on the
default backend: `with use_backend("emulator"):` inside a block, `set_backend(name)` for
the process, else the DEEPINSIDE_BACKEND environment variable, else auto. `module.to(name)`
and `tensor.to(name)` move what exists.
"""
import contextlib
import contextvars
import os

import numpy as np

from .. import kernels
from .errors import InputError

NAMES = ("numpy", "cuda", "emulator")


class Backend:
    """One backend: its name, its array module (`xp`: NumPy or CuPy) and its kernels
    (`ops.<family>.<op>`, see kernels.bind)."""

    __slots__ = ("name", "xp", "ops")

    def __init__(self, name, xp, ops):
        self.name, self.xp, self.ops = name, xp, ops

    def asarray(self, data, dtype=None):
        """`data` (NumPy, CuPy or anything array-like) as an array of this backend."""
        if self.xp is np:
            data = to_numpy(data)
        return self.xp.asarray(data, dtype=dtype)

    def __repr__(self):
        return f"Backend({self.name!r})"


def to_numpy(array):
    """A NumPy array of a backend array (a copy when it lives on a GPU)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


_built = {"numpy": Backend("numpy", np, kernels.numpy_ops)}


def _build(name):
    from ..kernels.launch import CudaLauncher, EmulatorLauncher, KernelError

    try:
        launcher = CudaLauncher() if name == "cuda" else EmulatorLauncher()
    except KernelError as error:  # no GPU, no CuPy, no compiler: the user chose a backend this machine lacks
        raise InputError(str(error)) from None
    return Backend(name, launcher.xp, kernels.bind(kernels.Device(launcher)))


def get_backend(name=None):
    """The Backend named `name` (numpy, cuda, emulator or auto; a Backend is returned as it
    is), built on first use; without a name, the default backend for new tensors."""
    if name is None:
        return default()
    if isinstance(name, Backend):
        return name
    if name == "auto":
        from ..kernels.launch import cuda_available
        name = "cuda" if cuda_available() else "numpy"
    if name not in NAMES:
        raise InputError(f"unknown backend {name!r}: expected one of {', '.join(NAMES)} or 'auto'")
    if name not in _built:
        _built[name] = _build(name)
    return _built[name]


_process_default = None
_block_default = contextvars.ContextVar("deepinside_backend", default=None)


def default():
    """The backend new tensors go on."""
    global _process_default
    chosen = _block_default.get()
    if chosen is None:
        if _process_default is None:
            try:
                _process_default = get_backend(os.environ.get("DEEPINSIDE_BACKEND", "auto"))
            except InputError as error:
                raise InputError(f"$DEEPINSIDE_BACKEND: {error}") from None
        chosen = _process_default
    return chosen


def set_backend(name):
    """Makes `name` the default backend of new tensors for the whole process."""
    global _process_default
    _process_default = get_backend(name)


@contextlib.contextmanager
def use_backend(name):
    """New tensors inside the block go on backend `name`."""
    token = _block_default.set(get_backend(name))
    try:
        yield _block_default.get()
    finally:
        _block_default.reset(token)


def available_backends():
    return NAMES


def same_backend(operation, *tensors):
    """The backend all of `tensors` (None ignored) live on, or a ValueError naming them."""
    backends = [t.backend for t in tensors if t is not None]
    if any(b is not backends[0] for b in backends):
        names = ", ".join(b.name for b in backends)
        raise ValueError(f"{operation}: operands live on different backends ({names}); "
                         "move them to one with .to(backend)")
    return backends[0]


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory():
    """Lets this process reuse the memory of freed activations instead of asking the system
    for fresh pages: glibc hands blocks of a few MB and more back to the kernel when they
    are freed and maps new ones on the next allocation, and the NumPy path allocates and
    frees such arrays at every layer, so each pass paid a page fault per 4 KB touched.
    Measured on the 2-core machine (bench/test_allocator.py, four runs): an EfficientNet-Lite0
    saliency pass in a fresh process 50-73 ms -> 38-46 ms, a shapes-net training step 5-10%
    shorter. The cost: up to 1 GB of freed memory stays with
    the process. Process-wide, so only the command-line tool calls it; a library user gets
    the same with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 in the
    environment. Does nothing where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, TypeError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # activations are a few MB; bigger blocks are rare
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
