"""Every kernel file compiled for the GPU at hand, each in a process of its own and all at
once, into CuPy's on-disk kernel cache; prints each file's seconds.

    python -m deepinside.kernels.precompile

NVRTC compiles a .cu file whole on its first use in a process (conv2d.cu: 16-67 s of one
CPU core, less with launch.NVRTC_OPTIONS' --split-compile spreading it over the cores;
`python -m deepinside.kernels.check` times it on one core without a GPU), and
CuPy keeps the binary for every later process. bench/gpu_check.sh runs this first, so that
no part of it spends its time limit compiling, or is cut off before the cache is written
and leaves the next part to compile again. A file whose process could not use the GPU (a
card in exclusive-process mode takes one process at a time) is compiled afterwards in this
one; a file NVRTC refuses ends the command with its log.
"""
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from .launch import CompileError, KernelError, _cupy, compile_timed, sources


def main():
    _cupy()  # no GPU or no CuPy: one line saying so, before any process starts
    paths = sources()
    start, unfinished = time.perf_counter(), []
    with ProcessPoolExecutor(len(paths), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(path, pool.submit(compile_timed, path)) for path in paths]
        for path, future in futures:
            try:
                print(f"{os.path.basename(path):<14} {future.result():6.1f} s", flush=True)
            except CompileError:
                raise
            except Exception as error:  # the process could not use the GPU (a card in exclusive-process mode, say)
                unfinished.append((path, error))
    for path, error in unfinished:  # then here, one after another
        print(f"{os.path.basename(path):<14} {compile_timed(path):6.1f} s (in the first process: {error})", flush=True)
    print(f"{len(paths)} files compiled in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except KernelError as error:
        sys.exit(f"python -m deepinside.kernels.precompile: {error}")
