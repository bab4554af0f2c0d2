"""Hardware counters, by Nsight Compute (ncu), of the kernels furthest from the issue's
targets, where a ladder's time says how far and not why: one launch each, at the sizes the
ladders time them, then a table from ncu's raw CSV of each kernel's duration, DRAM and SM
throughput (percent of peak), achieved occupancy, issue-slot use and the three largest
stall reasons (warps stalled per issued instruction). bench/gpu_check.sh runs it where ncu
is on the machine; the clocks are left alone (--clock-control none).

    python bench/profile_kernels.py OUTDIR              # ncu over `--launch` into OUTDIR/profile.ncu-rep,
                                                        # its raw page as profile.csv, the table as profile.md
    python bench/profile_kernels.py --launch            # the launches alone (what ncu runs)
    python bench/profile_kernels.py --launch --emulator # the same calls at small sizes on the emulator
    python bench/profile_kernels.py --summary CSV       # the table of a raw CSV ncu wrote

The launches: SGEMM 4096^3 (nn) on v12 and v13; VGG-16's conv1_2 backward-data at batch 16
through the fused F(4x4) and F(2x2) (their filter transforms too); conv1_1's backward-data
through both few-channel kernels; the depthwise forward's rows and planes (where they fit)
on the depthwise ladder's four EfficientNet layers, its weight gradient's v2 and v3 on the
7 x 7 one and its stride-2 backward-data's v2 and v3 on the 5x5 stride-2 one; max-pool v3
and v4 on VGG-16's first pool at batch 16.
"""
import argparse
import csv
import os
import re
import shutil
import subprocess
import sys

import numpy as np

SECTIONS = ("SpeedOfLight", "Occupancy", "WarpStateStats", "SchedulerStats", "MemoryWorkloadAnalysis", "LaunchStats")
MOST_LAUNCHES = 40  # a cap on what ncu replays, should a call launch more than its kernel
# (column of ncu's raw page, heading): the summary's columns
COLUMNS = (("gpu__time_duration.sum", "us"), ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "DRAM %"),
           ("sm__throughput.avg.pct_of_peak_sustained_elapsed", "SM %"),
           ("sm__warps_active.avg.pct_of_peak_sustained_active", "occupancy %"),
           ("smsp__issue_active.avg.pct_of_peak_sustained_active", "issue %"))
STALL = re.compile(r"^smsp__average_warps?_issue_stalled_(\w+?)_per_issue_active\.ratio$")


def launches(launcher, small):
    """(what, call) of each launch on `launcher`, at small sizes (for the emulator) or at the
    ladders'; operands drawn on the host, so that no generator kernel is profiled."""
    from deepinside import kernels
    from deepinside.kernels import depthwise, maxpool
    from deepinside.kernels.conv2d import conv2d_output_size
    from deepinside.kernels.ladder import EMULATOR_DEPTHWISE, GEMM_LADDER, GPU_DEPTHWISE

    device, xp, rng = kernels.Device(launcher), launcher.xp, np.random.default_rng(0)

    def random(*shape):
        return xp.asarray(rng.standard_normal(shape, dtype=np.float32))

    size, batch, image, channels, pool = (40, 1, 12, 8, (1, 4, 16, 16)) if small else (4096, 16, 224, 64,
                                                                                       (16, 64, 224, 224))
    rungs = {rung.name: rung for rung in GEMM_LADDER}
    a, b, c = random(size, size), random(size, size), xp.empty((size, size), np.float32)
    for name in ("sgemm_async", "sgemm_8x16_async"):
        yield f"SGEMM {size}^3 nn, {name}", lambda name=name: rungs[name].launch(device, a, b, c, False, False)
    weight, grad_y = random(channels, channels, 3, 3), random(batch, channels, image, image)
    for mode in ("winograd_fused4", "winograd_fused"):
        conv = kernels.bind(kernels.Device(launcher, mode)).conv2d
        yield (f"conv1_2 backward-data N{batch} ({mode})",
               lambda conv=conv: conv.backward_data(grad_y, weight, (batch, channels, image, image), 1, 1))
    first, conv = random(channels, 3, 3, 3), kernels.bind(device).conv2d
    for version in ("few_channels", "few_channels_async"):
        yield (f"conv1_1 backward-data N{batch} ({version})", lambda version=version: conv.backward_data(
            grad_y, first, (batch, 3, image, image), 1, 1, few_channels=version))
    depthwise_shapes = EMULATOR_DEPTHWISE[:3] if small else GPU_DEPTHWISE
    operands = {}  # shape -> (x, filters, gradient); not grad_y: the lambdas above read that name when called
    for shape in depthwise_shapes:
        n, c_, h, w, k, stride, padding = shape
        x, filters = random(n, c_, h, w), random(c_, 1, k, k)
        out = conv2d_output_size(h, k, stride, padding), conv2d_output_size(w, k, stride, padding)
        operands[shape] = x, filters, random(n, c_, *out)
        planes = ["depthwise_forward_planes"] if depthwise.planes_fit(device, x.shape, k, out) else []
        for version in ["depthwise_forward_rows"] + planes:  # (v4 where it runs a kernel of its own)
            yield (f"depthwise forward N{n} C{c_} {h}x{w} k{k} s{stride} ({version})",
                   lambda x=x, filters=filters, stride=stride, padding=padding, version=version:
                   depthwise.depthwise_forward_device(device, x, filters, None, stride, padding, version=version))
    # the weight gradient's per-channel rungs on the last layer (EfficientNet's 7 x 7 planes,
    # where v2's reduction is most of its work), the stride-2 backward-data rungs on the 5x5 one
    shape = depthwise_shapes[-1]
    (n, c_, h, w, k, stride, padding), (x, filters, gradient) = shape, operands[shape]
    for version in depthwise.PER_CHANNEL:
        yield (f"depthwise backward-weights N{n} C{c_} {h}x{w} k{k} s{stride} ({version})",
               lambda x=x, gradient=gradient, k=k, stride=stride, padding=padding, version=version:
               depthwise.depthwise_backward_weights_device(device, gradient, x, (x.shape[1], 1, k, k), stride, padding,
                                                           version=version))
    shape = depthwise_shapes[1]
    (n, c_, h, w, k, stride, padding), (x, filters, gradient) = shape, operands[shape]
    for version in depthwise.STRIDE_TWO:
        yield (f"depthwise backward-data N{n} C{c_} {h}x{w} k{k} s{stride} ({version})",
               lambda x=x, filters=filters, gradient=gradient, stride=stride, padding=padding, version=version:
               depthwise.depthwise_backward_data_device(device, gradient, filters, x.shape, stride, padding,
                                                        version=version))
    # the backward's switches from the NumPy path: a forward launched for them would be profiled too
    pooled, switches = maxpool.maxpool_forward(rng.standard_normal(pool, dtype=np.float32), 2, 2)
    x, pooled, switches = random(*pool), xp.asarray(pooled), xp.asarray(switches)
    for version in ("v3", "v4"):
        yield f"maxpool {version} forward {pool}", lambda version=version: maxpool.maxpool_forward_device(
            device, x, 2, 2, version=version)
        yield f"maxpool {version} backward {pool}", lambda version=version: maxpool.maxpool_backward_device(
            device, pooled, switches, pool, 2, 2, version=version)


def run_launches(emulator):
    from deepinside.kernels.launch import CudaLauncher, EmulatorLauncher

    for what, call in launches(EmulatorLauncher() if emulator else CudaLauncher(), small=emulator):
        call()
        print(what, flush=True)


def summary(path):
    """The markdown table of ncu's raw page at `path` (`ncu --import REPORT --page raw --csv`:
    a row of metric names, one of units, a row a kernel; any line of the tool's own before
    them skipped); a column ncu did not write is left empty."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(line for line in handle if line.startswith('"')))
    if len(rows) < 3:
        return f"no kernel in {path}\n"
    header, units, kernels = rows[0], rows[1], rows[2:]
    index = {name: i for i, name in enumerate(header)}
    stalls = [(match.group(1), i) for i, name in enumerate(header) if (match := STALL.match(name))]
    to_us = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}

    def value(row, i):  # (None where the column is missing)
        try:
            return float(row[i].replace(",", ""))
        except (ValueError, IndexError, TypeError):
            return None

    def text(row, name):
        i = index.get(name)
        return row[i] if i is not None and i < len(row) else ""

    lines = ["| kernel | grid | block | " + " | ".join(heading for _, heading in COLUMNS) + " | largest stalls |",
             "| --- | --- | --- | " + " | ".join("---:" for _ in COLUMNS) + " | --- |"]
    for row in kernels:
        cells = []
        for metric, heading in COLUMNS:
            i = index.get(metric)
            number = value(row, i)
            if number is not None and heading == "us":
                number *= to_us.get(units[i], 1.0)
            cells.append("" if number is None else f"{number:.1f}")
        ranked = sorted(((number, reason) for reason, i in stalls if (number := value(row, i)) is not None),
                        reverse=True)
        largest = ", ".join(f"{reason} {number:.2f}" for number, reason in ranked[:3])
        lines.append(f"| {text(row, 'Kernel Name')} | {text(row, 'Grid Size')} | {text(row, 'Block Size')} | "
                     + " | ".join(cells) + f" | {largest} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", help="where ncu's CSV and the table go")
    parser.add_argument("--launch", action="store_true", help="the launches alone")
    parser.add_argument("--emulator", action="store_true", help="(with --launch) on the emulator, small sizes")
    parser.add_argument("--summary", metavar="CSV", help="the table of a raw CSV ncu wrote")
    arguments = parser.parse_args(argv)
    if arguments.launch:
        run_launches(arguments.emulator)
        return 0
    if arguments.summary:
        print(summary(arguments.summary), end="")
        return 0
    if not arguments.out:
        parser.error("give OUTDIR, --launch or --summary")
    if not shutil.which("ncu"):
        sys.exit("python bench/profile_kernels.py: ncu is not on this machine")
    os.makedirs(arguments.out, exist_ok=True)
    report, table_csv = os.path.join(arguments.out, "profile"), os.path.join(arguments.out, "profile.csv")
    # The counters go into a report (-o); its raw page is exported from it afterwards.
    command = ["ncu", "--clock-control", "none", *(f"--section={s}" for s in SECTIONS), "--launch-count",
               str(MOST_LAUNCHES), "--force-overwrite", "-o", report, sys.executable, __file__, "--launch"]
    print(" ".join(command), flush=True)
    status = subprocess.run(command).returncode
    with open(table_csv, "w") as handle:
        subprocess.run(["ncu", "--import", report + ".ncu-rep", "--page", "raw", "--csv"], stdout=handle)
    table = summary(table_csv)
    with open(os.path.join(arguments.out, "profile.md"), "w") as handle:
        handle.write(f"`{' '.join(command)}` (exit status {status})\n\n" + table)
    print(table, end="")
    return status


if __name__ == "__main__":
    sys.exit(main())
