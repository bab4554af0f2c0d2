"""Compile check: every kernel of kernels/*.cu for sm_80 (A100) and sm_90 (H100/H200), compiled
the way CuPy's RawModule compiles it (NVRTC, from the nvidia-cuda-nvrtc wheel, with no
header included, the launcher's options and the -ftz=true CuPy adds; no GPU or driver
needed), printing registers, shared memory, barriers and spills per kernel as ptxas reports
them, and how many of its blocks an SM holds by those figures: a kernel whose
`__launch_bounds__(threads, blocks)` promises more blocks an SM than fit fails the check
(split-K plans its waves with that promise). Where nvdisasm is at hand (the machine's, or
`pip install nvidia-cuda-nvdisasm`), the machine code of every register-tiled kernel's main
loop is counted too: its instructions, FFMAs, shared, global and local (spill) accesses, and
the FFMAs' share of the instructions, about the most of the FP32 peak the loop can reach at
one instruction a cycle. The figures are those of the machine code a GPU process runs: the
same compiler, source and options. Exits 1 on any compile error, broken promise or spill
inside a main loop on sm_90 (with the file, the architecture and the compiler's log), 0
otherwise; without NVRTC it says so and exits 0, since there is nothing it can check.

    python -m deepinside.kernels.check
    python -m deepinside.kernels.check --loops kernels/depthwise.cu [--arch sm_80]   # every loop of one file
"""
import argparse
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

from .launch import CUPY_ADDED_OPTIONS, NVRTC_OPTIONS, SPLIT_COMPILE, kernel_source, read_kernels, sources

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


def compile_report(path, architecture, cubin=os.devnull, split=False):
    """(ok, rows, log) of NVRTC compiling one file as CuPy's RawModule would, ptxas made
    verbose: rows are dicts per kernel from its report; the machine code goes to `cubin`.
    `split`: with CuPy's SPLIT_COMPILE, for a compile that has the cores to itself."""
    nvrtc = load_nvrtc()
    source = kernel_source(path).encode()
    program = ctypes.c_void_p()
    nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, os.path.basename(path).encode(), 0, None, None)
    # CuPy's options, but for SPLIT_COMPILE where not `split`: the check's compiles already
    # fill the machine's cores, one a core (with it too, CI's check took 14% longer)
    options = [f"--gpu-architecture={architecture}".encode(), b"--ptxas-options=-v"] + [
        option.encode() for option in NVRTC_OPTIONS + CUPY_ADDED_OPTIONS if split or option != SPLIT_COMPILE]
    ok = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options)) == 0
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(max(1, size.value))
    nvrtc.nvrtcGetProgramLog(program, log)
    if ok:
        nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size))
        machine_code = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetCUBIN(program, machine_code)
        with open(cubin, "wb") as file:
            file.write(machine_code.raw)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    log = log.value.decode(errors="replace")
    rows, row = [], None
    for line in log.splitlines():
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
    return ok, rows, log


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


def hot_loops(listing, least_fmas=HOT_LOOP_FMAS, staged=True):
    """{kernel: [Counter of opcodes]} of an nvdisasm listing: every loop (a branch back to an
    earlier label; its instructions those from the label to the branch, whichever paths an
    iteration takes) with at least `least_fmas` FFMAs and, where `staged`, a shared-memory
    load, in address order."""
    loops, kernel, labels, instructions = {}, None, {}, []  # labels: name -> index of the instruction after

    def close():
        for index, text in enumerate(instructions):
            target = _BRANCH_TARGET.search(text)
            start = labels.get(target.group(1)) if target else None
            if start is not None and start <= index:
                mix = Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0]
                              for t in instructions[start:index + 1])
                if mix["FFMA"] >= least_fmas and (mix["LDS"] or not staged):
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


def disassembled(path, architecture, nvdisasm, work):
    """(ok, ptxas's rows, log, nvdisasm's listing or None, the compile's seconds) of compiling
    one file (compile_report), its machine code written into the folder `work`; no listing
    without nvdisasm or code."""
    cubin = os.path.join(work, f"{os.path.basename(path)}.{architecture}.cubin")
    start = time.perf_counter()
    ok, rows, log = compile_report(path, architecture, cubin)
    seconds = time.perf_counter() - start
    listing = None
    if ok and nvdisasm:
        listing = subprocess.run([nvdisasm, cubin], capture_output=True, text=True, check=True).stdout
    return ok, rows, log, listing, seconds


def _compile_job(path, architecture, nvdisasm, work):
    """(ok, ptxas's rows, log, [(kernel, main loop's opcode mix)], {kernel: instructions},
    seconds) of compiling one file, in a worker process of its own."""
    ok, rows, log, listing, seconds = disassembled(path, architecture, nvdisasm, work)
    loops, sizes = [], {}
    if listing is not None:
        loops = [(kernel, mix) for kernel, mixes in hot_loops(listing).items() for mix in mixes]
        sizes = kernel_sizes(listing)
    return ok, rows, log, loops, sizes, seconds


def _compile_everything(nvdisasm, work):
    """{(path, architecture): _compile_job's result} of every file for every architecture,
    the compiles spread over the machine's cores, the largest files first (a compile is one
    core: one after another, conv2d.cu's alone were most of CI's wall time)."""
    jobs = [(path, architecture) for path in sorted(sources(), key=os.path.getsize, reverse=True)
            for architecture in ARCHITECTURES]
    with ProcessPoolExecutor(len(os.sched_getaffinity(0)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {job: pool.submit(_compile_job, *job, nvdisasm, work) for job in jobs}
        return {job: future.result() for job, future in futures.items()}


def print_loops(path, architecture):
    """Every loop of every kernel of one file (`--loops`), as report_loops prints main loops;
    returns 1 where it cannot (no NVRTC or nvdisasm, or the file does not compile)."""
    nvdisasm = find_nvdisasm()
    if load_nvrtc() is None or not nvdisasm:
        print("deepinside.kernels.check --loops needs NVRTC and nvdisasm (pip install -e \".[test]\")", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        ok, _, log, listing, _ = disassembled(path, architecture, nvdisasm, work)
    if not ok:
        print(f"FAILED: {os.path.basename(path)} for {architecture}\n{log}", file=sys.stderr)
        return 1
    header = (f"{'kernel':<40} {'instr':>6} {'FFMA':>5} {'LDS':>4} {'STS':>4} {'LDG':>4} {'local':>5} {'BAR':>3} "
              f"{'FFMA share':>10}")
    print(f"Every loop of {os.path.basename(path)}'s kernels for {architecture} (instructions from its label to its "
          "branch back, every path counted; nested loops each on a row of their own), by nvdisasm:")
    print(header)
    print("-" * len(header))
    for kernel, mixes in hot_loops(listing, least_fmas=0, staged=False).items():
        for mix in mixes:
            count, fmas, lds, sts, ldg, local, barriers, share = loop_row(mix)
            print(f"{kernel:<40} {count:>6} {fmas:>5} {lds:>4} {sts:>4} {ldg:>4} {local:>5} {barriers:>3} "
                  f"{share:>10.2f}")
    return 0


def main(argv=()):
    parser = argparse.ArgumentParser(prog="python -m deepinside.kernels.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", metavar="FILE", help="print every loop of one kernel file's kernels instead "
                                                        "(e.g. kernels/depthwise.cu)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="sm_90", help="with --loops (default sm_90)")
    arguments = parser.parse_args(argv)
    if arguments.loops:
        if not os.path.isfile(arguments.loops):
            parser.error(f"--loops: no file {arguments.loops}")
        return print_loops(arguments.loops, arguments.arch)
    if load_nvrtc() is None:
        print("deepinside.kernels.check: no NVRTC on this machine (pip install \"nvidia-cuda-nvrtc==13.0.*\"); "
              "nothing was compiled")
        return 0
    nvdisasm = find_nvdisasm()
    with tempfile.TemporaryDirectory() as work:  # the machine code nvdisasm reads
        compiled = _compile_everything(nvdisasm, work)
    failures, seconds = 0, {}
    declared, loops = read_kernels()[0], []
    header = (f"{'file':<12} {'kernel':<34} {'arch':<6} {'regs':>5} {'smem B':>7} {'bars':>4} {'stack B':>7} "
              f"{'spills B':>9} {'blocks/SM':>9} {'instr':>6}")
    print(header)
    print("-" * len(header))
    for path in sources():
        for architecture in ARCHITECTURES:
            ok, rows, log, file_loops, sizes, seconds[(os.path.basename(path), architecture)] = \
                compiled[(path, architecture)]
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
    (name, architecture), slowest = max(seconds.items(), key=lambda item: item[1])
    print(f"\nNVRTC: {len(sources())} files x {len(ARCHITECTURES)} architectures: "
          f"{'all compiled' if not failures else f'{failures} failed (in all)'}; the slowest {name} for "
          f"{architecture}, {slowest:.1f} s on one core (a GPU process compiles a file on its first use, over "
          "every core)")
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
    sys.exit(main(sys.argv[1:]))
