"""Compile check: every kernel of kernels/*.cu for sm_80 (A100) and sm_90 (H100/H200)
with the machine's nvcc (no GPU or driver needed), printing registers, shared memory,
barriers and spills per kernel as ptxas reports them, and how many of its blocks an SM
holds by those figures: a kernel whose `__launch_bounds__(threads, blocks)` promises more
blocks an SM than fit fails the check (split-K plans its waves with that promise). Where the
NVRTC wheel is installed (`pip install "nvidia-cuda-nvrtc==13.0.*"`), each file is also
compiled the way CuPy's RawModule compiles it: by NVRTC, with no header included, with
the launcher's options (but for --split-compile: the check's compiles, spread over the
cores one a core, already fill them). Where
nvdisasm is at hand (the machine's, or `pip install nvidia-cuda-nvdisasm`), the machine code
of every register-tiled kernel's main loop is counted too: its instructions, FFMAs, shared,
global and local (spill) accesses, and the FFMAs' share of the instructions, about the most
of the FP32 peak the loop can reach at one instruction a cycle. Exits 1 on any compile
error, broken promise or spill inside a main loop on sm_90 (with the file, the architecture
and the compiler's log), 0 otherwise; with no compiler on the machine it says so and exits
0, since there is nothing it can check.

    python -m deepinside.kernels.check
"""
import ctypes
import glob
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from .launch import NVRTC_OPTIONS, SPLIT_COMPILE, kernel_source, read_kernels, sources

ARCHITECTURES = ("sm_80", "sm_90")
# An SM's resources: 64 K registers, 2048 threads and 32 blocks on both; shared memory 164 KiB
# (A100) and 228 KiB (H100), of which the driver reserves 1 KiB a block.
SHARED_PER_SM = {"sm_80": 164 << 10, "sm_90": 228 << 10}


def resident_blocks(registers, shared_bytes, threads, architecture):
    """Blocks of a kernel an SM holds at once: registers are allocated 256 at a time per
    warp, shared memory with a 1 KiB reserve a block."""
    warps = -(-threads // 32)
    by_registers = 65536 // (warps * -(-registers * 32 // 256) * 256) if registers else 32
    by_shared = SHARED_PER_SM[architecture] // (shared_bytes + 1024) if shared_bytes else 32
    return min(by_registers, by_shared, 2048 // threads, 32)
_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USAGE = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, \d+ bytes cumulative stack size)?"
                    r"(?:, (\d+) bytes smem)?")


def compile_report(path, architecture, nvcc="nvcc", cubin=os.devnull):
    """(ok, rows, log): rows are dicts per kernel from ptxas's verbose output; the machine
    code goes to `cubin`."""
    command = [nvcc, "-cubin", f"-arch={architecture}", "-std=c++17", "-Xptxas", "-v", "-o", cubin, path]
    result = subprocess.run(command, capture_output=True, text=True)
    rows, row = [], None
    for line in (result.stdout + result.stderr).splitlines():
        if match := _ENTRY.search(line):
            row = {"kernel": match.group(1), "arch": match.group(2), "registers": None, "barriers": 0,
                   "smem_bytes": 0, "stack_bytes": 0, "spill_store_bytes": 0, "spill_load_bytes": 0}
            rows.append(row)
        elif row and (match := _SPILLS.search(line)):
            row["stack_bytes"], row["spill_store_bytes"], row["spill_load_bytes"] = map(int, match.groups())
        elif row and (match := _USAGE.search(line)):
            row["registers"] = int(match.group(1))
            row["barriers"] = int(match.group(2) or 0)
            row["smem_bytes"] = int(match.group(3) or 0)
    return result.returncode == 0, rows, result.stdout + result.stderr


def find_nvdisasm():
    """nvdisasm, the machine's or the nvidia-cuda-nvdisasm wheel's, or None."""
    wheel = sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "bin", "nvdisasm")))
    return shutil.which("nvdisasm") or next((path for path in wheel if os.access(path, os.X_OK)), None)


_SECTION = re.compile(r"^\.text\.(\w+):")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_INSTRUCTION = re.compile(r"/\*([0-9a-f]+)\*/\s+(.+?)\s*;")
_BRANCH_TARGET = re.compile(r"\bBRA\b.*`\((\.L_x_\d+)\)")
# A loop with this many FFMAs an iteration that reads shared memory is a register-tiled
# product's main loop: one reduction step of an 8 x 8 thread tile, its operands staged in
# shared memory (the element-wise transforms' and the depthwise rows' loops have as many
# FFMAs and read global memory only). A loop around such a loop is one too, with the inner
# loop's instructions counted once (the fused F(4x4)'s slice around its rolled products).
HOT_LOOP_FMAS = 64


def hot_loops(listing):
    """{kernel: [Counter of opcodes]} of an nvdisasm listing: every loop (a branch back to an
    earlier label; its instructions those from the label to the branch, whichever paths an
    iteration takes) with at least HOT_LOOP_FMAS FFMAs and a shared-memory load, in address
    order."""
    loops, kernel, labels, instructions = {}, None, {}, []  # labels: name -> index of the instruction after

    def close():
        for index, text in enumerate(instructions):
            target = _BRANCH_TARGET.search(text)
            start = labels.get(target.group(1)) if target else None
            if start is not None and start <= index:
                mix = Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0]
                              for t in instructions[start:index + 1])
                if mix["FFMA"] >= HOT_LOOP_FMAS and mix["LDS"]:
                    loops.setdefault(kernel, []).append(mix)

    for line in listing.splitlines():
        if match := _SECTION.match(line):
            close()
            kernel, labels, instructions = match.group(1), {}, []
        elif match := _LABEL.match(line):
            labels[match.group(1)] = len(instructions)
        elif kernel and (match := _INSTRUCTION.search(line)):
            instructions.append(match.group(2))
    close()
    return loops


# A kernel's machine code, at most: ptxas's time grows faster than a function's size, and an
# entry that inlines its every tile and shape multiplies whatever its epilogue costs (the
# implicit GEMM's entries once reached 51-98 K instructions, conv2d.cu a 60-second NVRTC
# compile; 13-29 K since).
MAX_KERNEL_INSTRUCTIONS = 40_000


def kernel_sizes(listing):
    """{kernel: instructions} of an nvdisasm listing."""
    sizes, kernel = {}, None
    for line in listing.splitlines():
        if match := _SECTION.match(line):
            kernel = match.group(1)
            sizes[kernel] = 0
        elif kernel and _INSTRUCTION.search(line):
            sizes[kernel] += 1
    return sizes


def loop_row(mix):
    """The columns of one hot loop: instructions, FFMAs, shared loads and stores, global
    loads (LDGSTS, an asynchronous copy into shared memory, among them), local-memory
    accesses (spills), barriers, and the FFMAs' share of the
    instructions. An SM's scheduler issues one instruction a cycle, so a loop cannot reach
    more of the FP32 peak than that share, or a little more where an iteration skips some
    of its paths (every path is counted: the fallbacks of a vector load, say)."""
    count = sum(mix.values())
    return (count, mix["FFMA"], mix["LDS"], mix["STS"], mix["LDG"] + mix["LDGSTS"], mix["LDL"] + mix["STL"],
            mix["BAR"], mix["FFMA"] / count)


def load_nvrtc():
    """NVRTC from the nvidia-cuda-nvrtc wheel, or None."""
    found = sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "lib", "libnvrtc.so.*")))
    if not found:
        return None
    directory = os.path.dirname(found[0])
    for builtins in glob.glob(os.path.join(directory, "libnvrtc-builtins.so.*")):
        ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)  # NVRTC opens it by name
    return ctypes.CDLL(found[0])


def nvrtc_compile(nvrtc, path, architecture):
    """(ok, log) of NVRTC compiling one file, as CuPy's RawModule would."""
    source = kernel_source(path).encode()
    program = ctypes.c_void_p()
    nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, os.path.basename(path).encode(), 0, None, None)
    # CuPy's options, but for SPLIT_COMPILE: the check's compiles already fill the machine's
    # cores, one a core (with it too, CI's check took 14% longer)
    options = [f"--gpu-architecture={architecture}".encode()] + [
        option.encode() for option in NVRTC_OPTIONS if option != SPLIT_COMPILE]
    status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(max(1, size.value))
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    return status == 0, log.value.decode(errors="replace")


def _nvrtc_job(path, architecture):
    """(ok, log, seconds) of NVRTC compiling one file, in a worker process of its own."""
    start = time.perf_counter()
    ok, log = nvrtc_compile(load_nvrtc(), path, architecture)
    return ok, log, time.perf_counter() - start


def _nvcc_job(path, architecture, nvcc, nvdisasm, work):
    """(ok, ptxas's rows, log, [(kernel, main loop's opcode mix)], {kernel: instructions})
    of nvcc compiling one file, in a worker process of its own."""
    cubin = os.path.join(work, f"{os.path.basename(path)}.{architecture}.cubin")
    ok, rows, log = compile_report(path, architecture, nvcc, cubin)
    loops, sizes = [], {}
    if ok and nvdisasm:
        listing = subprocess.run([nvdisasm, cubin], capture_output=True, text=True, check=True).stdout
        loops = [(kernel, mix) for kernel, mixes in hot_loops(listing).items() for mix in mixes]
        sizes = kernel_sizes(listing)
    return ok, rows, log, loops, sizes


def _compile_everything(nvcc, nvrtc_found, nvdisasm, work):
    """Every file for every architecture by NVRTC (where found) and nvcc (where found), the
    compiles spread over the machine's cores, the largest files first (a compiler is one core:
    one after another, conv2d.cu's four compiles alone were most of CI's wall time). Returns
    ({(path, architecture): NVRTC's result}, {(path, architecture): nvcc's result})."""
    jobs = [(path, architecture) for path in sorted(sources(), key=os.path.getsize, reverse=True)
            for architecture in ARCHITECTURES]
    with ProcessPoolExecutor(len(os.sched_getaffinity(0)), mp_context=multiprocessing.get_context("spawn")) as pool:
        by_nvrtc, by_nvcc = {}, {}
        for job in jobs:
            if nvrtc_found:
                by_nvrtc[job] = pool.submit(_nvrtc_job, *job)
            if nvcc:
                by_nvcc[job] = pool.submit(_nvcc_job, *job, nvcc, nvdisasm, work)
        return ({job: future.result() for job, future in by_nvrtc.items()},
                {job: future.result() for job, future in by_nvcc.items()})


def main():
    nvcc = shutil.which("nvcc")
    nvrtc_found = load_nvrtc() is not None
    if nvcc is None and not nvrtc_found:
        print("deepinside.kernels.check: neither nvcc nor NVRTC on this machine; nothing was compiled")
        return 0
    nvdisasm = find_nvdisasm() if nvcc else None
    with tempfile.TemporaryDirectory() as work:  # the machine code nvdisasm reads
        by_nvrtc, by_nvcc = _compile_everything(nvcc, nvrtc_found, nvdisasm, work)
    failures = 0
    if by_nvrtc:
        seconds = {}
        for path in sources():
            for architecture in ARCHITECTURES:
                ok, log, seconds[(os.path.basename(path), architecture)] = by_nvrtc[(path, architecture)]
                if not ok:
                    failures += 1
                    print(f"\nFAILED (NVRTC): {os.path.basename(path)} for {architecture}\n{log}", file=sys.stderr)
        (name, architecture), slowest = max(seconds.items(), key=lambda item: item[1])
        print(f"NVRTC: {len(sources())} files x {len(ARCHITECTURES)} architectures compiled"
              f"{'' if not failures else f', {failures} failed'}; the slowest {name} for {architecture}, "
              f"{slowest:.1f} s on one core (a GPU process compiles a file on its first use, over every core)\n")
    if nvcc is None:
        print("no nvcc: registers, shared memory and spills are not reported")
        return 1 if failures else 0
    declared, loops = read_kernels()[0], []
    header = (f"{'file':<12} {'kernel':<34} {'arch':<6} {'regs':>5} {'smem B':>7} {'bars':>4} {'stack B':>7} "
              f"{'spills B':>9} {'blocks/SM':>9} {'instr':>6}")
    print(header)
    print("-" * len(header))
    for path in sources():
        for architecture in ARCHITECTURES:
            ok, rows, log, file_loops, sizes = by_nvcc[(path, architecture)]
            if not ok:
                failures += 1
                print(f"\nFAILED: {os.path.basename(path)} for {architecture}\n{log}", file=sys.stderr)
                continue
            loops += [(os.path.basename(path), kernel, architecture, mix) for kernel, mix in file_loops]
            for row in rows:
                spills = row["spill_store_bytes"] + row["spill_load_bytes"]
                kernel = declared.get(row["kernel"])
                threads = (kernel and kernel.block_threads) or 256  # element-wise kernels: blocks of 256
                fit = resident_blocks(row["registers"], row["smem_bytes"], threads, architecture)
                promised = kernel.resident_blocks if kernel else 1
                size = sizes.get(row["kernel"])
                print(f"{os.path.basename(path):<12} {row['kernel']:<34} {row['arch']:<6} {row['registers']:>5} "
                      f"{row['smem_bytes']:>7} {row['barriers']:>4} {row['stack_bytes']:>7} {spills:>9} {fit:>9} "
                      f"{size if size is not None else '':>6}")
                if size and size > MAX_KERNEL_INSTRUCTIONS:
                    failures += 1
                    print(f"\nFAILED: {row['kernel']} is {size} instructions on {architecture}, over "
                          f"{MAX_KERNEL_INSTRUCTIONS} (check.py: MAX_KERNEL_INSTRUCTIONS)", file=sys.stderr)
                if fit < promised:
                    failures += 1
                    print(f"\nFAILED: {row['kernel']} promises {promised} blocks an SM (__launch_bounds__) but "
                          f"{fit} fit on {architecture}", file=sys.stderr)
    failures += report_loops(loops, nvdisasm)
    print(f"\nnvcc: {len(sources())} files x {len(ARCHITECTURES)} architectures: "
          f"{'all compiled' if not failures else f'{failures} failed (in all)'}")
    return 1 if failures else 0


# The architecture of the cards the project's targets are measured on (H100, H200): a spill
# inside a main loop fails the check there, and is only reported on the others.
TARGET_ARCHITECTURE = "sm_90"


def report_loops(loops, nvdisasm):
    """Prints the register-tiled kernels' main loops (file, kernel, architecture, opcode
    mix); returns how many spill inside one on TARGET_ARCHITECTURE, which fails the check:
    a spill there is a local-memory round trip every iteration."""
    if not nvdisasm:
        print("\nno nvdisasm (pip install nvidia-cuda-nvdisasm): the main loops' instructions are not reported")
        return 0
    header = (f"{'file':<12} {'kernel':<36} {'arch':<6} {'instr':>6} {'FFMA':>5} {'LDS':>4} {'STS':>4} {'LDG':>4} "
              f"{'local':>5} {'BAR':>3} {'FFMA share':>10}")
    print(f"\nMain loops (at least {HOT_LOOP_FMAS} FFMAs an iteration; a kernel has one a compile-time shape and "
          "tile, v13's two: interior blocks' and the others'), by nvdisasm; FFMA share: FFMAs over instructions, "
          "every path counted, about the most of the FP32 peak a loop can reach at one instruction a cycle:")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, kernel, architecture, mix in loops:
        count, fmas, lds, sts, ldg, local, barriers, share = loop_row(mix)
        print(f"{name:<12} {kernel:<36} {architecture:<6} {count:>6} {fmas:>5} {lds:>4} {sts:>4} {ldg:>4} {local:>5} "
              f"{barriers:>3} {share:>10.2f}")
        if local:
            failing = architecture == TARGET_ARCHITECTURE
            failures += failing
            print(f"{'FAILED' if failing else 'note'}: {kernel} spills inside a main loop on {architecture} ({local} "
                  "local-memory accesses an iteration)", file=sys.stderr if failing else sys.stdout)
    return failures


if __name__ == "__main__":
    sys.exit(main())
