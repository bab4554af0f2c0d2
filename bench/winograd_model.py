"""Napkin maths for Winograd on VGG-16's layers, before a GPU has timed it: per layer and
direction, the multiply-adds of the (m + 2)^2 products over whole tiles (128 x 128 as
gemm.cu's batched kernels run them; 64 x 256 for products of at most 64 rows, as conv2d.cu's
products_wide_nn does) at the rate our tiles reached, plus the bytes the
transforms and products move at the bandwidth our element-wise kernels reached, against
the H100 run's own times (the implicit GEMM) and cuDNN's. A prediction, not a measurement:
the next GPU run's `winograd` and `winograd4` rows (bench/gpu_kernels.py) say how far it
holds.

    python bench/winograd_model.py [--batch 64] [--results bench/results/h100-2026-11-27/run3/gpu_kernels.json]

The model: the products in the waves of blocks that gemm.py plans for them (split_k_slices,
as conv2d.py's _winograd_products calls it: 264 blocks at once on an H100 (two an SM), a wave
costing its fullest block's multiply-adds), at RATE (run 3: the implicit GEMM and v8 at
30-39 TFLOP/s on whole tiles); every Winograd-domain tensor written once and read once from
memory at BANDWIDTH (run 2: ReLU at 2.5-2.7 TB/s), the activations read or written once by
each transform, the filters' transforms left out (a few MB); and LAUNCH for each of the
four kernels (a CUDA graph's launch and a last wave's tail). It leaves out the products'
re-reads of an operand that L2 does not hold. The fused F(2x2, 3x3) and F(4x4, 3x3)
(eighteenth and nineteenth sessions) likewise: their products in waves of their 32 x 32
blocks at RATE scaled by their main loops' FFMA share, the activations once.
"""
import argparse
import json
import os
import statistics

from deepinside.kernels.gemm import PLANE_COST, split_k_slices

RATE = 35e12  # FLOP/s our 128 x 128 tiles reached (run 3)
BANDWIDTH = 2.5e12  # bytes/s our streaming kernels reached (run 2)
LAUNCH = 5e-6  # seconds a kernel takes at the least
CONCURRENT = 264  # 128 x 128 blocks an H100 runs at once (132 SMs x 2)
TILE = 128
VGG16 = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56),
         (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14),
         (512, 512, 14)]  # (in, out, size), 3x3, stride 1, padding 1
DIRECTIONS = ("forward", "backward-data", "backward-weights")


def _tile(rows, direction):
    """(rows, columns) of the block tile the products run on: conv2d.cu's 64 x 256 for the
    forward's and backward-data's products of at most 64 rows (conv2d.py:
    _winograd_products), else gemm.cu's 128 x 128."""
    return (64, 256) if rows <= 64 and direction != "backward-weights" else (TILE, TILE)


def _whole(count, tile):
    return -(-count // tile) * tile


def estimate(n, c, o, size, m, direction):
    """(FLOPs of the products over whole tiles, bytes moved, the products' (rows, columns,
    reduction)) of Winograd F(m x m, 3 x 3) on one 3x3 stride-1 padding-1 layer of n images of
    c -> o channels on size x size maps."""
    planes, tiles = (m + 2) ** 2, n * (-(-size // m)) ** 2
    activations = {"in": n * c * size * size * 4, "out": n * o * size * size * 4}
    if direction == "backward-weights":  # O x C products reducing over the tiles
        transformed = planes * (o + c) * tiles * 4  # E and V, written then read
        shape = o, c, tiles
    else:
        rows, inner = (o, c) if direction == "forward" else (c, o)  # backward-data: the forward of grad_y
        transformed = planes * (inner + rows) * tiles * 4  # V and the products, written then read
        shape = rows, tiles, inner
    tile_rows, tile_columns = _tile(shape[0], direction)
    flops = 2 * planes * _whole(shape[0], tile_rows) * _whole(shape[1], tile_columns) * shape[2]
    return flops, activations["in"] + activations["out"] + 2 * transformed, shape


def predicted_seconds(n, c, o, size, m, direction):
    """The model's time of one layer and direction (the module's docstring)."""
    _, moved, (rows, columns, reduction) = estimate(n, c, o, size, m, direction)
    tile_rows, tile_columns = _tile(rows, direction)
    products, blocks = (m + 2) ** 2, -(-rows // tile_rows) * -(-columns // tile_columns)
    result, area = products * rows * columns, tile_rows * tile_columns
    length, slices = split_k_slices(products * blocks, reduction, 8, CONCURRENT, result=result, tile=area)
    waves = -(-products * blocks * slices // CONCURRENT)
    multiply_adds = waves * CONCURRENT * area * length + (slices > 1) * slices * result * PLANE_COST
    return 2 * multiply_adds / RATE + moved / BANDWIDTH + 4 * LAUNCH


FUSED_TILE = 32  # conv2d.cu's WF_BO and WF_BP: a block's output channels and tiles
# Per m: the fused kernel's blocks an H100 runs at once (132 SMs x two for m = 2, one for
# m = 4), and its main loop's FFMA share (kernels.check, sm_90: 0.66 and 0.52) over the 128 x
# 128 tiles' (0.78) that reached RATE: its products' rate, scaled so.
FUSED = {2: (264, 0.66 / 0.78), 4: (132, 0.52 / 0.78)}


def predicted_fused_seconds(n, c, o, size, m, direction):
    """The model's time of F(m x m, 3 x 3) fused (conv2d.cu: winograd_fused_2x2 and _4x4),
    forward or backward-data: its (m + 2)^2 products over whole 32 x 32 blocks, in waves of
    the blocks an H100 holds at once, at RATE scaled by its loop's FFMA share (FUSED); the
    activations read and written once at BANDWIDTH (nothing of the Winograd domain goes to
    memory); two launches (the filter transform's and its own)."""
    concurrent, share = FUSED[m]
    rows, inner = (o, c) if direction == "forward" else (c, o)
    tiles = n * (-(-size // m)) ** 2
    blocks = -(-rows // FUSED_TILE) * -(-tiles // FUSED_TILE)
    waves = -(-blocks // concurrent)
    multiply_adds = waves * concurrent * (m + 2) ** 2 * FUSED_TILE * FUSED_TILE * inner
    return 2 * multiply_adds / (RATE * share) + n * (c + o) * size * size * 4 / BANDWIDTH + 2 * LAUNCH


def measured(path, batch):
    """{(layer index, direction): (ours ms, cuDNN ms)} of VGG-16's rows at `batch` in a
    bench/gpu_kernels.py JSON (the 13 layers in order, directions as it names them)."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as handle:
        rows = [r for r in json.load(handle)["rows"] if r["group"] == "conv"
                and r["shape"].startswith(f"vgg16 N{batch} ") and r["direction"] in DIRECTIONS]
    times, seen = {}, {}
    for row in rows:
        index = seen.get(row["direction"], 0)
        seen[row["direction"]] = index + 1
        times[(index, row["direction"])] = (row["ours_ms"], row.get("peer_ms"))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                          "h100-2026-11-27", "run3", "gpu_kernels.json"))
    arguments = parser.parse_args(argv)
    n, times = arguments.batch, measured(arguments.results, arguments.batch)
    print(f"VGG-16 at batch {n}: Winograd's model time (ms) against the H100 run's (ours: implicit GEMM; cuDNN)\n")
    print("| layer | direction | F(2x2) | F(4x4) | F(2x2) fused | F(4x4) fused | ours measured | cuDNN measured "
          "| cuDNN / F(4x4) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = {d: [] for d in DIRECTIONS}
    for index, (c, o, size) in enumerate(VGG16):
        for direction in DIRECTIONS:
            f2, f4 = (predicted_seconds(n, c, o, size, m, direction) * 1e3 for m in (2, 4))
            fused = " | ".join(f"{predicted_fused_seconds(n, c, o, size, m, direction) * 1e3:.2f}"
                               if direction != "backward-weights" else "" for m in (2, 4))
            ours, peer = times.get((index, direction), (None, None))
            ratio = peer / f4 if peer else None
            if ratio:
                ratios[direction].append(ratio)
            cells = [f"{v:.2f}" if v else "" for v in (ours, peer)] + [f"{ratio:.2f}" if ratio else ""]
            print(f"| C{c} O{o} {size}x{size} | {direction} | {f2:.2f} | {f4:.2f} | {fused} | " + " | ".join(cells)
                  + " |")
    for direction, values in ratios.items():
        if values:
            print(f"\n{direction}: cuDNN's time over F(4x4)'s model, median {statistics.median(values):.2f}, "
                  f"lowest {min(values):.2f} over {len(values)} layers")


if __name__ == "__main__":
    main()
