"""The implicit GEMM's grid plans for VGG-16's convolutions, by the wave model of
kernels/gemm.py: split_k_slices, against the rule before the eleventh session (square tiles
only, about 264 blocks rounded up). No GPU needed: it prints, per layer and direction, the
tiles, slices and the model's time of the plan now over the plan before (a wave of 264
blocks costs as much however few blocks it holds; partial planes cost PLANE_COST a
result), and the totals; a GPU run's per-layer times (bench/gpu_kernels.py) say how far
the model holds.

    python bench/split_plans.py [--batch 1]
"""
import argparse

from deepinside.kernels.gemm import PLANE_COST, split_k_slices

CONCURRENT = {"forward": 264, "backward-data": 264, "backward-weights": 132}  # an H100: 132 SMs x blocks an SM
TILE = 128 * 128  # results a block (both tiles)
VGG16 = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56),
         (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14),
         (512, 512, 14)]


def plan_before(tiles, depth, quantum=8, min_depth=8, target=264):
    """The rule of the tenth session: about `target` blocks, rounded up."""
    splits = min(-(-target // tiles), depth // min_depth)
    if splits <= 1:
        return depth, 1
    length = -(-(-(-depth // splits)) // quantum) * quantum
    return length, -(-depth // length)


def model_time(tiles, plan, concurrent, result):
    length, slices = plan
    return -(-tiles * slices // concurrent) * concurrent * TILE * length + (slices > 1) * slices * result * PLANE_COST


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    n = parser.parse_args(argv).batch
    print(f"VGG-16 at batch {n}: model time of today's plan / the plan before\n")
    print("| layer | direction | tiles (before -> now) | slices (before -> now) | now / before |")
    print("| --- | --- | --- | --- | ---: |")
    totals = {}
    for c, o, size in VGG16:
        positions = n * size * size
        # (rows, columns, reduction) of each product; the engine's column paths are left out
        products = {"forward": (o, positions, c * 9), "backward-data": (c, positions, o * 9),
                    "backward-weights": (o, c * 9, positions)}
        for direction, (rows, columns, depth) in products.items():
            if (direction == "backward-data" and c < 64) or (direction == "backward-weights" and size * size <= 256):
                continue
            concurrent = CONCURRENT[direction]
            square = -(-rows // 128) * -(-columns // 128)
            tiles = -(-columns // 256) if rows <= 64 else square
            before = plan_before(square, depth)
            now = split_k_slices(tiles, depth, 8, concurrent, 8, rows * columns, TILE)
            old, new = model_time(square, before, concurrent, rows * columns), model_time(tiles, now, concurrent,
                                                                                          rows * columns)
            totals.setdefault(direction, [0, 0])
            totals[direction][0] += old
            totals[direction][1] += new
            print(f"| C{c} O{o} {size}x{size} | {direction} | {square} -> {tiles} | {before[1]} -> {now[1]} | "
                  f"{new / old:.2f} |")
    for direction, (old, new) in totals.items():
        print(f"\n{direction}: {new / old:.2f} of the time before, over the layers above")


if __name__ == "__main__":
    main()
