"""Global-memory coalescing, counted on the CPU: every global-memory access of a kernel's
first blocks as the emulator runs them, costed in the 32-byte sectors a GPU moves.

    python -m deepinside.kernels.sectors          # every ladder's kernels: lines above the fewest sectors
    python -m deepinside.kernels.sectors --all    # every line

A warp's request (one instruction, its 32 lanes) moves every 32-byte sector its lanes'
bytes touch; the fewest it could move is its distinct bytes / 32, rounded up (32 lanes
reading consecutive floats: 4 sectors; every other float: 8 for the same 128 bytes, 2x). It
is what a GPU profiler calls sectors per request (Nsight Compute's
l1tex__t_sectors_pipe_lsu_mem_global_op_{ld,st} over its requests, and its "uncoalesced
global accesses" rule), without one. The sectors a request wastes are read into L1 or
written partially into L2; whether they also cost DRAM bandwidth depends on whether a
neighbouring request of the same warp uses them while they are cached, which this count does
not model: it says where a kernel's lanes could share their requests better, not how long
the kernel takes.

The same traced emulator as kernels.banks (its docstring says how), whose runtime keeps the
accesses outside __shared__ memory, the running thread's stack (its locals: registers on a
GPU) and the emulator library's own image. Only the lines of the kernel files are reported
(an access inside the emulator's header, `__ldg`, is named by the kernel line that calls it).
"""
import functools
import sys

from .banks import command


# whole warps of whole planes, several planes a block
SMALL_ELEMENTWISE = {"activations": (2, 8, 16, 16), "image": (2, 3, 32, 32), "features": (2, 64, 7, 7),
                     "lrn": (2, 16, 8, 8), "flat": 4096}


def ladder_cases():
    """(title, run(device)) of every family's ladder on small shapes: relu, max-pool,
    depthwise, the other element-wise kernels, the convolutions in each direction (every rung) and the SGEMMs."""
    from . import ladder

    def convolution(direction, device):  # a 3x3 and a 5x5 (F(2x2, 5x5)'s) layer
        ladder.run_conv(direction, device.launcher, [(2, 32, 16, 16, 32, 3, 1, 1), (2, 32, 16, 16, 32, 5, 1, 2)], 1,
                        ladder.wall_clock)

    return ([("relu", lambda device: ladder.run_relu(device, [4099], 1, ladder.wall_clock)),
             ("maxpool", lambda device: ladder.run_maxpool(device, [(1, 4, 64, 64)], 1, ladder.wall_clock)),
             ("depthwise", lambda device: ladder.run_depthwise(device, [(1, 8, 32, 32, 3, 1, 1),
                                                                        (1, 8, 32, 32, 5, 2, 2),
                                                                        (2, 64, 7, 7, 5, 1, 2)], 1,
                                                               ladder.wall_clock)),
             ("elementwise", lambda device: ladder.run_elementwise(device, SMALL_ELEMENTWISE, 1, ladder.wall_clock))]
            + [(direction, functools.partial(convolution, direction)) for direction in ladder.CONV_DIRECTIONS]
            + [("gemm", lambda device: ladder.run_gemm(device, [(128, 128, 64), (64, 256, 64)], 1,
                                                       ladder.wall_clock))])  # (the wide rung's: at most 64 rows)


def main(argv=None):
    return command("sectors", __doc__, ladder_cases, "global", argv)


if __name__ == "__main__":
    sys.exit(main())
