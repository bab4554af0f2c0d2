"""Compile check: every kernel of kernels/*.cu for sm_80 (A100) and sm_90 (H100/H200)
with the machine's nvcc (no GPU or driver needed), printing registers, shared memory,
barriers and spills per kernel as ptxas reports them. Exits 1 on any compile error (with
the file, the architecture and the compiler's log), 0 otherwise; with no nvcc on the
machine it says so and exits 0, since there is nothing it can check.

    python -m kernels.check
"""
import os
import re
import shutil
import subprocess
import sys

from .launch import sources

ARCHITECTURES = ("sm_80", "sm_90")
_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USAGE = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


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


def main():
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("kernels.check: no nvcc on this machine; nothing was compiled (install the CUDA toolkit to check)")
        return 0
    failures = 0
    header = f"{'file':<12} {'kernel':<34} {'arch':<6} {'regs':>5} {'smem B':>7} {'bars':>4} {'stack B':>7} {'spills B':>9}"
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
                print(f"{os.path.basename(path):<12} {row['kernel']:<34} {row['arch']:<6} {row['registers']:>5} "
                      f"{row['smem_bytes']:>7} {row['barriers']:>4} {row['stack_bytes']:>7} {spills:>9}")
    print(f"\n{len(sources())} files x {len(ARCHITECTURES)} architectures: "
          f"{'all compiled' if not failures else f'{failures} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
