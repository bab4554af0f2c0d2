"""python -m deepinside.kernels.precompile (what bench/gpu_check.sh runs first): every
kernel file compiled, each in a process of its own, with a stand-in for CuPy that records
what it was asked to compile and where (no GPU here); and one line, no traceback, where a
file fails to compile or there is no GPU."""
import hashlib
import os
import subprocess
import sys

from deepinside.kernels.launch import KERNEL_DIR, NVRTC_OPTIONS, kernel_source, sources

FAKE_CUPY = '''
import hashlib, multiprocessing, os

class _Runtime:
    class CUDARuntimeError(Exception):
        pass

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDevice():
        return 0

    @staticmethod
    def getDeviceProperties(device):
        return {"multiProcessorCount": 132}


class _Compiler:
    class CompileException(Exception):
        pass


class cuda:
    runtime = _Runtime
    compiler = _Compiler


class RawModule:
    def __init__(self, code, options):
        self.code, self.options = code, options

    def compile(self):
        if os.environ.get("FAKE_CUPY_OLD_NVRTC") and "--split-compile=0" in self.options:
            raise cuda.compiler.CompileException("nvrtc: error: unrecognized option --split-compile=0")
        busy = os.environ.get("FAKE_CUPY_BUSY", "\\0")  # a process other than the command's may not use the GPU
        if busy in self.code and multiprocessing.parent_process() is not None:
            raise _Runtime.CUDARuntimeError("cudaErrorDevicesUnavailable: all CUDA-capable devices are busy")
        if os.environ.get("FAKE_CUPY_FAIL", "\\0") in self.code:
            raise cuda.compiler.CompileException("error: a made-up error")
        digest = hashlib.sha256(self.code.encode()).hexdigest()
        with open(os.path.join(os.environ["FAKE_CUPY_LOG"], digest), "w") as handle:
            handle.write(" ".join([str(os.getpid()), *self.options]))
'''


def _run(tmp_path, **environment):
    (tmp_path / "cupy").mkdir(exist_ok=True)
    (tmp_path / "cupy" / "__init__.py").write_text(FAKE_CUPY)
    log = tmp_path / "log"
    log.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
               FAKE_CUPY_LOG=str(log), **environment)
    process = subprocess.Popen([sys.executable, "-m", "deepinside.kernels.precompile"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=300)
    return process, stdout, stderr, log


def test_every_kernel_file_is_compiled_in_a_process_of_its_own(tmp_path):
    process, stdout, stderr, log = _run(tmp_path)
    assert process.returncode == 0, stderr
    expected = {hashlib.sha256(kernel_source(path).encode()).hexdigest(): os.path.basename(path) for path in sources()}
    compiled = {entry.name: int(entry.read_text().split()[0]) for entry in log.iterdir()}
    assert set(compiled) == set(expected)
    assert all(entry.read_text().split()[1:] == list(NVRTC_OPTIONS) for entry in log.iterdir())
    assert process.pid not in compiled.values()  # in the pool's processes, not the command's own
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == sorted(expected.values())
    assert lines[-1].startswith(f"{len(expected)} files compiled in ")


def test_an_nvrtc_without_split_compile_is_asked_again_without_it(tmp_path):
    process, stdout, stderr, log = _run(tmp_path, FAKE_CUPY_OLD_NVRTC="1")
    assert process.returncode == 0, stderr
    assert len(list(log.iterdir())) == len(sources())
    assert all(entry.read_text().split()[1:] == ["-std=c++17"] for entry in log.iterdir())


def test_a_file_that_fails_to_compile_is_named_in_one_line(tmp_path):
    process, stdout, stderr, _ = _run(tmp_path, FAKE_CUPY_FAIL="conv2d_forward_direct")
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [
        "python -m deepinside.kernels.precompile: conv2d.cu: compile failed:", "error: a made-up error"]


def test_without_a_gpu_it_says_so_in_one_line():
    result = subprocess.run([sys.executable, "-m", "deepinside.kernels.precompile"], capture_output=True, text=True,
                            timeout=120)
    if result.returncode == 0:  # a machine with a GPU compiled them all
        assert result.stdout.splitlines()[-1].endswith(" s")
        return
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("python -m deepinside.kernels.precompile: the cuda backend ")


def test_a_file_whose_process_cannot_use_the_gpu_is_compiled_in_the_first(tmp_path):
    process, stdout, stderr, log = _run(tmp_path, FAKE_CUPY_BUSY="conv2d_forward_direct")
    assert process.returncode == 0, stderr
    (conv2d,) = [line for line in stdout.splitlines() if line.startswith("conv2d.cu")]
    assert conv2d.endswith("s (in the first process: cudaErrorDevicesUnavailable: all CUDA-capable devices are busy)")
    assert len(list(log.iterdir())) == len(sources())
    digest = hashlib.sha256(kernel_source(os.path.join(KERNEL_DIR, "conv2d.cu")).encode()).hexdigest()
    assert int((log / digest).read_text().split()[0]) == process.pid


def test_nvrtc_is_given_the_headers_text_in_place_of_its_include():
    """gemm.cu and conv2d.cu include async_copy.cuh: NVRTC is handed text, and CuPy keys its
    cache on that text, so the header's text must be in it (a changed header, a new key)."""
    with open(os.path.join(KERNEL_DIR, "async_copy.cuh")) as handle:
        header = handle.read()
    for name in ("gemm.cu", "conv2d.cu"):
        path = os.path.join(KERNEL_DIR, name)
        with open(path) as handle:
            raw = handle.read()
        assert '#include "async_copy.cuh"' in raw
        text = kernel_source(path)
        assert '#include "' not in text and header in text
        assert text.replace(header, '#include "async_copy.cuh"') == raw


def test_a_headers_own_includes_are_expanded_once():
    """batchnorm.cu includes index_walk.cuh and channel_sums.cuh, which includes
    index_walk.cuh again: the walk's text once, where the file first includes it, the sums'
    include of it left empty; and the constants the headers define are the file's for the
    launcher."""
    from deepinside.kernels.launch import read_kernels

    def text(name):
        with open(os.path.join(KERNEL_DIR, name)) as handle:
            return handle.read()
    walk, sums = text("index_walk.cuh"), text("channel_sums.cuh")
    expanded = kernel_source(os.path.join(KERNEL_DIR, "batchnorm.cu"))
    assert '#include "' not in expanded and expanded.count(walk) == 1
    assert expanded.index(walk) < expanded.index(sums.replace('#include "index_walk.cuh"', ""))
    kernels, defines = read_kernels()
    assert defines["REDUCE_THREADS"] == 256 and kernels["batchnorm_gradient_sums"].block_threads == 256
