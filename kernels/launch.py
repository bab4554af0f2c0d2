"""One launcher abstraction for the CUDA kernels: the `cuda` backend (CuPy RawModule, real
GPU) and the `emulator` backend (the same .cu files compiled by g++ under
emulator/cuda_emulator.h, on NumPy arrays) share every line of launch code and differ only
in how memory is held and how a kernel is started.

Everything the Python side needs to know about a kernel is read from its .cu file, so the
two sides cannot disagree:
  - its signature: every launch is checked before it starts (the number of arguments, each
    array's dtype and contiguity; each scalar is wrapped to the C type the kernel declares,
    since CuPy would pass a Python int as 64 bits);
  - its block size, where the kernel is written for one: a kernel declared with
    `__launch_bounds__(B)` (B a number or a `#define` of its file) assumes blocks of exactly
    B threads (shared-memory reductions, register tiles), and any other block is refused;
    `__launch_bounds__(B, R)` also says that R blocks share a multiprocessor (what split-K
    plans its waves with, gemm.py: split_k_slices);
  - the integer constants of its file (`#define GEMM_BM 128`), which launch geometry uses.
"""
import ctypes
import glob
import hashlib
import math
import os
import re
import subprocess
import tempfile
import time
from typing import NamedTuple

import numpy as np

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
EMULATOR_DIR = os.path.join(KERNEL_DIR, "emulator")
EMULATOR_HEADER = "cuda_emulator.h"  # included ahead of every kernel file

# dtype instances, not scalar types: an array's dtype compares with them without a conversion
POINTER_DTYPES = {"float": np.dtype(np.float32), "int": np.dtype(np.int32), "long long": np.dtype(np.int64)}
SCALAR_TYPES = {"float": (np.float32, ctypes.c_float), "int": (np.int32, ctypes.c_int),
                "long long": (np.int64, ctypes.c_longlong)}
_SIGNATURE = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\(\s*(\w+)\s*(?:,\s*(\w+)\s*)?\)\s+)?(\w+)\s*"
                        r"\(([^)]*)\)", re.S)
_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+(\d+)\s*$", re.M)
# What cudaLaunchKernel accepts on every card since compute capability 3.0: a launch past
# them fails on the GPU alone (the emulator would run it), so both sides refuse it here.
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_BLOCK = (1024, 1024, 64)
MAX_BLOCK_THREADS = 1024


class KernelError(RuntimeError):
    """A kernel that failed to compile or launch, or was called with wrong arguments."""


class CompileError(KernelError):
    """A kernel file that NVRTC refused (on a GPU machine: CudaLauncher.module)."""


class Kernel(NamedTuple):
    source: str  # path of its .cu file
    parameters: list  # [(C type, is_pointer, name)]
    block_threads: int | None  # the block size it is written for, from __launch_bounds__
    resident_blocks: int  # blocks of it an SM holds at once, from __launch_bounds__ (1 if unsaid)


def sources():
    return sorted(glob.glob(os.path.join(KERNEL_DIR, "*.cu")))


def headers():
    """The headers kernel files include (kernels/*.cuh)."""
    return sorted(glob.glob(os.path.join(KERNEL_DIR, "*.cuh")))


_LOCAL_INCLUDE = re.compile(r'^#include "(\w+\.cuh)"$', re.MULTILINE)


def kernel_source(path):
    """A kernel file's text as NVRTC is to compile it: each `#include "name.cuh"` of
    kernels/ replaced by that header's text, the headers' own includes too, each header once
    (they all say #pragma once). NVRTC is handed text, not a file, and CuPy keys its compile
    cache on that text: with the header's text in it, a changed header is a changed key."""
    included = set()

    def expanded(text):
        def header(match):  # beside the file, where nvcc and g++ look first
            if match.group(1) in included:
                return ""
            included.add(match.group(1))
            with open(os.path.join(os.path.dirname(path), match.group(1))) as handle:
                return expanded(handle.read())
        return _LOCAL_INCLUDE.sub(header, text)

    with open(path) as handle:
        return expanded(handle.read())


def parse_parameters(text):
    """[(C type without qualifiers, is_pointer, name)] of a kernel's parameter list."""
    parameters = []
    for raw in text.split(","):
        words = raw.replace("*", " * ").replace("__restrict__", " ").replace("const", " ").split()
        if not words:
            continue
        pointer = "*" in words
        words = [w for w in words if w != "*"]
        base, name = " ".join(words[:-1]), words[-1]
        if base not in SCALAR_TYPES:
            raise KernelError(f"kernel parameter {raw.strip()!r}: type {base!r} is not supported by the launcher")
        parameters.append((base, pointer, name))
    return parameters


def read_kernels():
    """({kernel name: Kernel}, {constant name: value}) over every .cu file in kernels/, each
    with the headers it includes (kernel_source: their constants are the file's).

    A constant defined in two files must have the same value in both."""
    kernels, defines, defined_in = {}, {}, {}
    for path in sources():
        text = kernel_source(path)
        local = {name: int(value) for name, value in _DEFINE.findall(text)}
        for name, value in local.items():
            if name in defines and defines[name] != value:
                raise KernelError(f"{name} is {defines[name]} in {defined_in[name]} but {value} in {path}")
            defines[name], defined_in[name] = value, path
        for bound, blocks, name, parameter_text in _SIGNATURE.findall(text):
            if name in kernels:
                raise KernelError(f"kernel {name} is defined in both {kernels[name].source} and {path}")
            threads, resident = None, 1
            for value in filter(None, (bound, blocks)):
                if not value.isdigit() and value not in local:
                    raise KernelError(f"{path}: __launch_bounds__({value}) of {name} is neither a number "
                                      "nor a #define of the same file")
            if bound:
                threads = int(bound) if bound.isdigit() else local[bound]
            if blocks:
                resident = int(blocks) if blocks.isdigit() else local[blocks]
            kernels[name] = Kernel(path, parse_parameters(parameter_text), threads, resident)
    return kernels, defines


class _LaunchPlan(NamedTuple):
    source: str
    parameters: list  # Kernel.parameters
    block_threads: int | None
    pointers: tuple  # (position, name, dtype) of each pointer parameter
    scalars: tuple  # (position, NumPy scalar type, its _SCALARS or None) of each scalar parameter


# Integer arguments as the NumPy scalars of their C types (what CuPy passes by type), by
# value: a pass launches the same sizes again and again, and a conversion costs several
# times a lookup (a conv2d launch's 13 scalars took 5 of its 20 microseconds). Floats are
# converted every time (a cache by value would take -0.0 for 0.0).
_SCALARS = {np.int32: {}, np.int64: {}}


def _scalar(scalar_type, known, value):
    """`value` as a `scalar_type`, remembered in `known` (its _SCALARS, None for floats)
    where hashable."""
    converted = scalar_type(value)
    if known is not None:
        try:
            if len(known) > 4096:
                known.clear()
            known[value] = converted
        except TypeError:  # unhashable (a 0-d array): converted every time
            pass
    return converted


def _within_limits(grid, block, threads):
    """Whether a launch of `grid` blocks of `block` threads (tuples) is within CUDA's limits."""
    if len(grid) > 3 or len(block) > 3 or threads > MAX_BLOCK_THREADS:
        return False
    for value, limit in zip(grid, MAX_GRID):
        if value > limit:
            return False
    for value, limit in zip(block, MAX_BLOCK):
        if value > limit:
            return False
    return True


class Launcher:
    """Checks arguments against the kernel's signature and starts it; subclasses say how
    memory is held (`xp`), how a kernel starts (`_start`) and how many multiprocessors run
    blocks at once (`multiprocessors`)."""

    name = None
    xp = None
    multiprocessors = None

    def __init__(self):
        self.kernels, self.defines = read_kernels()
        self._plans = {}

    def empty(self, shape, dtype=np.float32):
        return self.xp.empty(shape, dtype)

    def launch(self, kernel, grid, block, *arguments):
        """Starts `kernel` on `grid` blocks of `block` threads (ints or tuples of up to 3)."""
        plan = self._plans.get(kernel) or self._plan(kernel)
        grid = tuple(map(int, grid)) if isinstance(grid, tuple) else (int(grid),)
        block = tuple(map(int, block)) if isinstance(block, tuple) else (int(block),)
        threads = math.prod(block)
        if plan.block_threads is not None and threads != plan.block_threads:
            raise KernelError(f"{kernel} is written for blocks of {plan.block_threads} threads (__launch_bounds__ in "
                              f"{os.path.basename(plan.source)}), launched with {threads}")
        if not _within_limits(grid, block, threads):
            raise KernelError(f"{kernel}: a grid of {grid} blocks of {block} threads is past CUDA's limits "
                              f"(grid {MAX_GRID}, block {MAX_BLOCK} and {MAX_BLOCK_THREADS} threads)")
        if len(arguments) != len(plan.parameters):
            raise KernelError(f"{kernel} takes {len(plan.parameters)} arguments, got {len(arguments)}")
        checked = list(arguments)
        for position, name, expected in plan.pointers:
            value = arguments[position]
            if not isinstance(value, self.xp.ndarray):
                raise KernelError(f"{kernel}: argument {name} must be a {self.xp.__name__} array, got {type(value).__name__}")
            if value.dtype != expected or not value.flags.c_contiguous:
                raise KernelError(f"{kernel}: argument {name} must be a C-contiguous {expected.name} "
                                  f"array, got {value.dtype}{' (not contiguous)' if not value.flags.c_contiguous else ''}")
        for position, scalar_type, known in plan.scalars:
            value = arguments[position]
            try:
                checked[position] = known[value]
            except (KeyError, TypeError):
                checked[position] = _scalar(scalar_type, known, value)
        if min(grid) < 1:
            return  # nothing to compute (an empty tensor)
        self._start(kernel, plan.parameters, grid + (1,) * (3 - len(grid)), block + (1,) * (3 - len(block)), checked)

    def _plan(self, kernel):
        """What launch checks of `kernel`, worked out at its first launch: where its pointers
        and scalars are (a launch's checks were most of the host's time in a batch-1 pass)."""
        if kernel not in self.kernels:
            raise KernelError(f"no kernel named {kernel} in kernels/*.cu")
        source, parameters, block_threads, _ = self.kernels[kernel]
        pointers = tuple((i, name, POINTER_DTYPES[base]) for i, (base, pointer, name) in enumerate(parameters)
                         if pointer)
        scalars = tuple((i, SCALAR_TYPES[base][0], _SCALARS.get(SCALAR_TYPES[base][0]))
                        for i, (base, pointer, _) in enumerate(parameters) if not pointer)
        plan = self._plans[kernel] = _LaunchPlan(source, parameters, block_threads, pointers, scalars)
        return plan

    def _start(self, kernel, parameters, grid, block, arguments):
        raise NotImplementedError

    @staticmethod
    def address(array):
        """Where an array's data starts (vector loads need 16-byte alignment)."""
        raise NotImplementedError


# The emulator ---------------------------------------------------------------------------

def _thunks(kernels):
    """C++ that unpacks an argv array into each kernel's parameters (what cuLaunchKernel does)."""
    lines = [f'#include "{EMULATOR_HEADER}"']
    for kernel, (_, parameters, _, _) in kernels.items():
        declared = ", ".join(f"{'const ' if p else ''}{b}{'*' if p else ''}" for b, p, _ in parameters)
        lines.append(f'extern "C" void {kernel}({declared});')
        unpacked = ", ".join(f"*({b}{'*' if p else ''}*)argv[{i}]" for i, (b, p, _) in enumerate(parameters))
        lines.append(f'extern "C" void {kernel}__thunk(void** argv) {{ {kernel}({unpacked}); }}')
    return "\n".join(lines) + "\n"


def _cache_dir():
    root = os.environ.get("DEEPINSIDE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "deepinside")
    os.makedirs(root, exist_ok=True)
    return root


# -fno-gnu-unique: GCC gives the static locals of inline and template functions (the
# kernels' __shared__ arrays, thread_local statics here) STB_GNU_UNIQUE binding, which the
# dynamic linker makes one per process across every library loaded, even privately: a
# second emulator library (the traced build, or one built from changed sources) would use
# the first one's shared memory.
COMPILER_FLAGS = ["-std=c++20", "-O2", "-fPIC", "-pthread", "-w", "-fno-gnu-unique"]
# The kernel files' loads and stores checked for alignment (UBSan's check, its handler ours:
# runtime.cpp): a float4 read from an address that is not a multiple of 16 works on a CPU
# and fails the launch on a GPU ("misaligned address", after which the CUDA context is lost
# to every later launch of the process); the emulator fails the launch as well.
ALIGNMENT_FLAGS = ["-fsanitize=alignment", "-fsanitize-recover=alignment"]
# The traced build (kernels/banks.py, CheckedEmulatorLauncher): every memory access of the
# kernel files becomes a call the runtime records accesses from and checks global ones
# against the launch's arrays with (GCC's kernel-address instrumentation,
# calls only, no shadow memory); line tables for naming the instruction; no scalar
# replacement of aggregates or vectorisation, so that a float4 load stays one 16-byte access
# and scalar ones stay scalar, as nvcc compiles them.
TRACE_FLAGS = ["-g1", "-fno-tree-sra", "-fno-tree-vectorize", "-fno-tree-slp-vectorize",
               "-fsanitize=kernel-address", "-fsanitize-recover=kernel-address",
               "--param", "asan-instrumentation-with-call-threshold=0", "--param", "asan-stack=0",
               "--param", "asan-globals=0"]


def build_emulator(kernels, traced=False):
    """The shared library of every kernel under the emulator, rebuilt when a source,
    the emulator or the flags change; cached across processes. `traced`: the build that
    records shared-memory accesses (TRACE_FLAGS)."""
    compiler = os.environ.get("CXX", "g++")
    thunk_code = _thunks(kernels)
    cuda_flags = COMPILER_FLAGS + ALIGNMENT_FLAGS + (TRACE_FLAGS if traced else [])
    runtime_flags = COMPILER_FLAGS + (["-DEMULATOR_TRACE_MEMORY"] if traced else [])
    digest = hashlib.sha256()
    for path in sources() + headers() + [os.path.join(EMULATOR_DIR, EMULATOR_HEADER),
                                         os.path.join(EMULATOR_DIR, "runtime.cpp")]:
        with open(path, "rb") as handle:
            digest.update(os.path.basename(path).encode() + handle.read())
    digest.update(thunk_code.encode() + " ".join([compiler] + cuda_flags + runtime_flags).encode())
    library = os.path.join(_cache_dir(), f"emulator-{'traced-' if traced else ''}{digest.hexdigest()[:16]}.so")
    if os.path.exists(library):
        return library
    with tempfile.TemporaryDirectory() as work:
        thunk_path = os.path.join(work, "thunks.cpp")
        with open(thunk_path, "w") as handle:
            handle.write(thunk_code)
        objects, processes = [], []
        units = [(p, True) for p in sources()] + [(os.path.join(EMULATOR_DIR, "runtime.cpp"), False), (thunk_path, False)]
        for index, (path, is_cuda) in enumerate(units):
            target = os.path.join(work, f"{index}.o")
            command = [compiler, *(cuda_flags if is_cuda else runtime_flags), "-I", EMULATOR_DIR, "-c", "-o", target]
            command += ["-include", EMULATOR_HEADER, "-x", "c++", path] if is_cuda else [path]
            processes.append((path, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
            objects.append(target)
        for path, process in processes:
            log = process.communicate()[0]
            if process.returncode:
                raise KernelError(f"emulator compile of {os.path.basename(path)} failed:\n{log}")
        partial = library + f".{os.getpid()}.tmp"
        result = subprocess.run([compiler, "-shared", "-pthread", "-o", partial, *objects],
                                capture_output=True, text=True)
        if result.returncode:
            raise KernelError(f"emulator link failed:\n{result.stderr}")
        os.replace(partial, library)
    return library


class EmulatorLauncher(Launcher):
    """The CUDA kernels on the CPU: NumPy arrays, the same grid and block shapes."""

    name = "emulator"
    xp = np
    multiprocessors = 132  # an H100's: the emulator plans its grids as the card the rules were measured on

    @staticmethod
    def address(array):
        return array.ctypes.data

    def __init__(self, workers=None, traced=False):
        super().__init__()
        self.path = build_emulator(self.kernels, traced)
        self.library = ctypes.CDLL(self.path)
        self.library.emulator_launch.restype = ctypes.c_int
        self.workers = workers or os.cpu_count() or 1
        self.thunks = {}

    def _start(self, kernel, parameters, grid, block, arguments):
        thunk = self.thunks.get(kernel)
        if thunk is None:
            thunk = self.thunks[kernel] = getattr(self.library, f"{kernel}__thunk")
        holders = [ctypes.c_void_p(a.ctypes.data) if pointer else SCALAR_TYPES[base][1](a)
                   for (base, pointer, _), a in zip(parameters, arguments)]
        argv = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
        error = ctypes.create_string_buffer(512)
        status = self.library.emulator_launch(ctypes.cast(thunk, ctypes.c_void_p), argv, *grid, *block,
                                              self.workers, error, len(error))
        if status:
            raise KernelError(f"{kernel}: {error.value.decode()}")


# Where cudaMalloc (and CuPy's pool) starts every array, in bytes; the checked emulator's
# copies start there too.
ALIGNMENT = 256
# Bytes between a checked launch's copies and any other array: an access that runs past one
# by less lands outside every array, where the check sees it.
GAP = 1 << 16
_INSTRUCTION = re.compile(r" \[instruction (0x[0-9a-f]+)\]")


class CheckedEmulatorLauncher(EmulatorLauncher):
    """The emulator's traced build, every global-memory access checked against the launch's
    arrays, as compute-sanitizer's memcheck checks a GPU's: a load or store outside all of
    them fails the launch, naming the kernel's line, the array it came nearest and by how
    many bytes it missed. Each array runs from a copy of its own, GAP bytes clear of any
    other, starting on an ALIGNMENT boundary (as cudaMalloc's arrays do) plus the original's
    offset from 16 bytes (a view that a wrapper gave its unaligned kernel stays unaligned),
    written back after the launch. Arrays that share memory run in place: a launch that
    reads one view of an array and writes another must see its own writes."""

    name = "emulator-checked"

    def __init__(self, workers=None):
        super().__init__(workers, traced=True)
        self.lines = {}  # instruction offset -> (file name, line)

    def _start(self, kernel, parameters, grid, block, arguments):
        arrays = {position: a for position, ((_, pointer, _), a) in enumerate(zip(parameters, arguments)) if pointer}
        copies = _isolated_copies(list(arrays.values()))
        running = [copies.get(id(a), a) if position in arrays else a for position, a in enumerate(arguments)]
        ranges = [(running[p].ctypes.data, running[p].ctypes.data + running[p].nbytes) for p in arrays]
        names = [parameters[p][2].encode() for p in arrays]
        self.library.emulator_bounds((ctypes.c_ulonglong * (2 * len(ranges)))(*[e for r in ranges for e in r]),
                                     (ctypes.c_char_p * len(names))(*names), len(names))
        try:
            super()._start(kernel, parameters, grid, block, running)
        except KernelError as error:
            raise KernelError(_INSTRUCTION.sub(lambda m: self._line_of(int(m.group(1), 16)), str(error))) from None
        finally:  # no later launch of the library is checked against this one's arrays
            self.library.emulator_bounds(None, None, -1)
        for array in arrays.values():
            if id(array) in copies:
                array[...] = copies[id(array)]

    def _line_of(self, offset):
        """" (file:line)" of the kernel-file line an instruction of the library comes from."""
        self.name_lines([offset])
        name, line = self.lines[offset]
        return f" ({name}:{line})"

    def name_lines(self, offsets):
        """Adds to self.lines the (file name, line) of each instruction offset: the innermost
        source line of the call before it outside the emulator's own header (addr2line,
        through the inlined functions: `__ldg(p)` is read where the kernel calls it)."""
        offsets = [offset for offset in offsets if offset not in self.lines]
        if not offsets:
            return
        try:
            result = subprocess.run(["addr2line", "-e", self.path, "-i", "-a", *[hex(o - 1) for o in offsets]],
                                    capture_output=True, text=True)
        except FileNotFoundError:
            raise KernelError("the traced emulator needs addr2line (binutils) to name source lines") from None
        if result.returncode:
            raise KernelError(f"addr2line failed on the traced emulator:\n{result.stderr}")
        chains = []
        for text in result.stdout.splitlines():
            if text.startswith("0x"):
                chains.append([])
                continue
            path, _, number = text.rpartition(":")
            chains[-1].append((os.path.basename(path), int(number.split()[0]) if number[:1].isdigit() else 0))
        lines = [next((frame for frame in chain if frame[0] != EMULATOR_HEADER), chain[0]) for chain in chains]
        self.lines.update(zip(offsets, lines))


def _isolated_copies(arrays):
    """{id(array): its copy} for CheckedEmulatorLauncher (the arrays C-contiguous, as launch
    checks); none where two of them share memory."""
    unique = list({id(a): a for a in arrays}.values())
    if any(np.may_share_memory(a, b) for i, a in enumerate(unique) for b in unique[i + 1:]):
        return {}
    copies = {}
    for array in unique:
        buffer = np.empty(GAP + 2 * ALIGNMENT + array.nbytes + GAP, np.uint8)
        start = GAP + (-buffer.ctypes.data - GAP) % ALIGNMENT + array.ctypes.data % 16
        copy = buffer[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
        copy[...] = array
        copies[id(array)] = copy
    return copies


# A real GPU ------------------------------------------------------------------------------

def _cupy():
    try:
        import cupy
    except ImportError:
        raise KernelError("the cuda backend needs CuPy: pip install -e \".[gpu]\" (cupy-cuda13x), "
                          "or select the numpy or emulator backend") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:  # no driver, or no device it can use
        raise KernelError(f"the cuda backend found no usable GPU ({error}); select the numpy or emulator backend") from None
    if count < 1:
        raise KernelError("the cuda backend found no GPU; select the numpy or emulator backend")
    return cupy


def cuda_available():
    try:
        _cupy()
        return True
    except KernelError:
        return False


# NVRTC's options, for CuPy's compiles and the compile check's alike: C++17, and the
# optimisation of a file's kernels spread over every core (SPLIT_COMPILE: conv2d.cu for
# sm_90 67 -> 30 s on two cores; every main loop's machine code the same, a few
# instructions elsewhere in four of its kernels not). An NVRTC that does not know the option
# is asked again without it.
SPLIT_COMPILE = "--split-compile=0"
NVRTC_OPTIONS = ("-std=c++17", SPLIT_COMPILE)
# What CuPy adds to every NVRTC compile of its own accord (cupy/cuda/compiler.py; CuPy issue
# 9576): denormals flushed to zero. The compile check adds it too, to count the same code.
CUPY_ADDED_OPTIONS = ("-ftz=true",)


class CudaLauncher(Launcher):
    """The kernels on a GPU through CuPy RawModule, each .cu compiled once and cached."""

    name = "cuda"

    def __init__(self):
        self.cupy = _cupy()
        self.xp = self.cupy
        super().__init__()
        device = self.cupy.cuda.runtime.getDevice()
        self.multiprocessors = self.cupy.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"]
        self.modules, self.functions = {}, {}

    def empty(self, shape, dtype=np.float32):
        try:
            return super().empty(shape, dtype)
        except self.cupy.cuda.memory.OutOfMemoryError:
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            raise MemoryError(f"GPU out of memory allocating {size / 2**20:.1f} MiB for an array of shape {shape}") from None

    def module(self, path):
        """The compiled module of one .cu file: NVRTC on its first use in a process, after
        which CuPy keeps the binary in its on-disk kernel cache for every later process."""
        if path not in self.modules:
            code, options = kernel_source(path), NVRTC_OPTIONS
            while True:
                module = self.cupy.RawModule(code=code, options=options)
                try:
                    module.compile()
                    break
                except self.cupy.cuda.compiler.CompileException as error:
                    if SPLIT_COMPILE in options and "split-compile" in str(error):
                        options = tuple(option for option in options if option != SPLIT_COMPILE)
                        continue
                    raise CompileError(f"{os.path.basename(path)}: compile failed:\n{error}") from None
            self.modules[path] = module
        return self.modules[path]

    def _function(self, kernel):
        if kernel not in self.functions:
            self.functions[kernel] = self.module(self.kernels[kernel].source).get_function(kernel)
        return self.functions[kernel]

    def _start(self, kernel, parameters, grid, block, arguments):
        self._function(kernel)(grid, block, tuple(arguments))

    @staticmethod
    def address(array):
        return array.data.ptr


def compile_timed(path):
    """Seconds to compile one .cu file for the GPU at hand into CuPy's cache (a process's
    first use; what kernels.precompile runs a process a file)."""
    start = time.perf_counter()
    CudaLauncher().module(path)
    return time.perf_counter() - start
