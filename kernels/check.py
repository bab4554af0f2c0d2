"""Compile check: every kernel of kernels/*.cu for sm_80 (A100) and sm_90 (H100/H200)
with the machine's nvcc (no GPU or driver needed), printing registers, shared memory,
barriers and spills per kernel as ptxas reports them, and how many of its blocks an SM
holds by those figures: a kernel whose `__launch_bounds__(threads, blocks)` promises more
blocks an SM than fit fails the check (split-K plans its waves with that promise). Where the
NVRTC wheel is installed (`pip install "nvidia-cuda-nvrtc==13.0.*"`), each file is also
compiled the way CuPy's RawModule compiles it: by NVRTC, with no header included. Exits 1
on any compile error or broken promise (with the file, the architecture and the compiler's
log), 0 otherwise; with no compiler on the machine it says so and exits 0, since there is
nothing it can check.

    python -m deepinside.kernels.check
"""
import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from .launch import read_kernels, sources

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


def compile_report(path, architecture, nvcc="nvcc"):
    """(ok, rows, log): rows are dicts per kernel from ptxas's verbose output."""
    command = [nvcc, "-cubin", f"-arch={architecture}", "-std=c++17", "-Xptxas", "-v", "-o", os.devnull, path]
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
    with open(path, "rb") as handle:
        source = handle.read()
    program = ctypes.c_void_p()
    nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, os.path.basename(path).encode(), 0, None, None)
    options = [f"--gpu-architecture={architecture}".encode(), b"-std=c++17"]
    status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(max(1, size.value))
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    return status == 0, log.value.decode(errors="replace")


def main():
    nvcc, nvrtc = shutil.which("nvcc"), load_nvrtc()
    if nvcc is None and nvrtc is None:
        print("deepinside.kernels.check: neither nvcc nor NVRTC on this machine; nothing was compiled")
        return 0
    failures = 0
    if nvrtc is not None:
        for path in sources():
            for architecture in ARCHITECTURES:
                ok, log = nvrtc_compile(nvrtc, path, architecture)
                if not ok:
                    failures += 1
                    print(f"\nFAILED (NVRTC): {os.path.basename(path)} for {architecture}\n{log}", file=sys.stderr)
        print(f"NVRTC: {len(sources())} files x {len(ARCHITECTURES)} architectures compiled"
              f"{'' if not failures else f', {failures} failed'}\n")
    if nvcc is None:
        print("no nvcc: registers, shared memory and spills are not reported")
        return 1 if failures else 0
    declared = read_kernels()[0]
    header = (f"{'file':<12} {'kernel':<34} {'arch':<6} {'regs':>5} {'smem B':>7} {'bars':>4} {'stack B':>7} "
              f"{'spills B':>9} {'blocks/SM':>9}")
    print(header)
    print("-" * len(header))
    for path in sources():
        for architecture in ARCHITECTURES:
            ok, rows, log = compile_report(path, architecture, nvcc)
            if not ok:
                failures += 1
                print(f"\nFAILED: {os.path.basename(path)} for {architecture}\n{log}", file=sys.stderr)
                continue
            for row in rows:
                spills = row["spill_store_bytes"] + row["spill_load_bytes"]
                kernel = declared.get(row["kernel"])
                threads = (kernel and kernel.block_threads) or 256  # element-wise kernels: blocks of 256
                fit = resident_blocks(row["registers"], row["smem_bytes"], threads, architecture)
                promised = kernel.resident_blocks if kernel else 1
                print(f"{os.path.basename(path):<12} {row['kernel']:<34} {row['arch']:<6} {row['registers']:>5} "
                      f"{row['smem_bytes']:>7} {row['barriers']:>4} {row['stack_bytes']:>7} {spills:>9} {fit:>9}")
                if fit < promised:
                    failures += 1
                    print(f"\nFAILED: {row['kernel']} promises {promised} blocks an SM (__launch_bounds__) but "
                          f"{fit} fit on {architecture}", file=sys.stderr)
    print(f"\nnvcc: {len(sources())} files x {len(ARCHITECTURES)} architectures: "
          f"{'all compiled' if not failures else f'{failures} failed (in all)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
