"""Single-precision matrix products C = op(A) op(B) + beta C, the workhorse of the fully
connected layers and of the convolutions' im2col path (gemm.cu has the tiling)."""
import functools

from .family import Device, OpFamily, expect
from .launch import KernelError


def gemm_product(a, b, transpose_a=False, transpose_b=False, out=None, beta=0.0):
    """NumPy reference: op(a) @ op(b), added to beta * out where `out` is given."""
    product = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    if out is None:
        return product
    out *= beta
    out += product
    return out


# The rungs of gemm.cu's ladder compiled once per transpose case the engine uses (NN, TN,
# NT), all 128 x 128 tiles of 256 threads (kernels/ladder.py runs them). The engine's
# products use ENGINE_SGEMM: the fastest rung of the H100 run of 2026-11-27 (pipelined,
# 0.77-0.81x cuBLAS at 4096^3, bench/results/h100-2026-11-27/run1-baseline/ladder_gemm.txt)
# with its reduction split between blocks where the tiles alone are too few (splitk: the
# same kernel as pipelined when they are not), and products of at most SKINNY_ROWS rows on
# the skinny rung (a fully connected layer at batch 1 to 8).
# v11 (8x16: twice the results a thread, 16-deep slices) and v12 (async: v8's slices copied
# into shared memory by cp.async, three in flight) came after it; the engine's tiled rung
# (ENGINE_TILED) is the one kernels.choices names from a GPU run's ladder: async on the H200
# run of 2026-11-28 (0.96 of pipelined's time over the ladder's 6 products, 0.84-0.85x
# cuBLAS at 4096^3, bench/results/h200-2026-11-28/).
SPECIALISED_SGEMMS = ("vectorized", "warptile", "pipelined", "splitk", "skinny", "8x16", "async", "8x16_async",
                      "wide")
ENGINE_SGEMM = "engine"  # skinny where it applies, else ENGINE_TILED, split where that pays
# The tiled rungs the engine can take: (kernel, its split-K kernel, its batched kernel, its
# staging depth).
TILED = {"pipelined": ("sgemm_pipelined", "sgemm_splitk", "sgemm_batched", "VEC_BK"),
         "8x16": ("sgemm_8x16", "sgemm_8x16_splitk", "sgemm_8x16_batched", "WIDE_BK"),
         "async": ("sgemm_async", "sgemm_async_splitk", "sgemm_async_batched", "VEC_BK"),
         "8x16_async": ("sgemm_8x16_async", "sgemm_8x16_async_splitk", "sgemm_8x16_async_batched", "WIDE_BK")}
ENGINE_TILED = "async"
# Products of SKINNY_ROWS + 1 to IG_WIDE_BM (64) rows without a transposed A (a fully
# connected layer's forward and input gradient at a batch of 9 to 64: VGG-16's fc6 at batch
# 64 ran at 0.47 of cuBLAS's speed on the H200, 2026-11-28) on the implicit GEMM's 64 x 256
# tile where ENGINE_WIDE says (the `wide` rung, conv2d.cu: products_wide_nn/nt): on the
# 128 x 128 tiles half or more of every block's multiply-adds are padding rows. Written
# after the H200 runs and taken untimed as the design allows a change that only removes
# work it provably wastes (the same sums, split into other slices), as the implicit GEMM's
# and Winograd's products of at most 64 rows moved onto this tile before it;
# kernels.choices weighs it against v9's split products from the ladder's rows of such
# products at the next GPU run.
ENGINE_WIDE = True
CASES = {(False, False): "nn", (True, False): "tn", (False, True): "nt"}
# Split-K: slices of at least SPLIT_K_MIN_DEPTH, so that each block's multiply-adds still
# outweigh its partial plane; of plans within SPLIT_K_TOLERANCE of the fastest, the one with
# the fewest slices. A partial result costs about PLANE_COST multiply-adds of the kernel's
# time: 8 bytes (written, then read by the sum) at about 7 multiply-adds a byte on an H100
# (our tiles reach about 35 TFLOP/s, its memory about 2.5 TB/s).
SPLIT_K_MIN_DEPTH = 256
SPLIT_K_TOLERANCE = 1.03
PLANE_COST = 56


@functools.lru_cache(maxsize=4096)
def split_k_slices(tiles, depth, quantum, concurrent, min_depth=SPLIT_K_MIN_DEPTH, result=0, tile=1):
    """(slice length, slice count) splitting a `depth`-long reduction over `tiles` tiles of
    `tile` results each (`result` results in all) between blocks, on a GPU that runs
    `concurrent` blocks at once: the split that finishes soonest, each slice a multiple of
    `quantum` (the kernel's staging depth) and at least `min_depth` long; (depth, 1) when
    no split pays.

    A plan takes its waves (grid / concurrent, rounded up: a last wave of a few blocks takes
    as long as a full one) times its slice length in multiply-adds of a whole wave, plus,
    where it splits, PLANE_COST a partial result (result = 0: a memory-bound kernel, whose
    planes cost what its reads do, counts none). Aiming at a block count instead (the rule
    before: about two blocks an SM, rounded up) left 264 + 24 blocks of VGG-16's fc6 at batch
    64 to run in two waves, the second a tenth full, and every weight gradient (one block an
    SM) in three waves where two and a sliver of work was."""
    if tiles < 1 or depth < 1:  # an empty product: nothing to split
        return depth, 1
    # more than 8 waves' worth of slices buys at most an eighth of a wave
    most = max(1, min(depth // max(min_depth, 1), -(-8 * concurrent // tiles)))
    plans = []
    for wanted in range(1, most + 1):
        length = -(-(-(-depth // wanted)) // quantum) * quantum  # rounded up to whole staging depths
        count = -(-depth // length)
        waves = -(-tiles * count // concurrent)
        plans.append((waves * concurrent * tile * length + (count > 1) * count * result * PLANE_COST, count, length))
    fastest = min(time for time, _, _ in plans)
    count, length = min((count, length) for time, count, length in plans if time <= fastest * SPLIT_K_TOLERANCE)
    return (depth, 1) if count == 1 else (length, count)


def gemm_product_device(device: Device, a, b, transpose_a=False, transpose_b=False, out=None, beta=0.0,
                        version=ENGINE_SGEMM):
    """The same on our kernels: one block per 128 x 128 tile of the result, the `version`
    rung for the transposes the engine uses, the runtime-flag sgemm_tiled for both."""
    m, k = (a.shape[1], a.shape[0]) if transpose_a else a.shape
    k_b, n = (b.shape[1], b.shape[0]) if transpose_b else b.shape
    expect(k == k_b, f"matrix product of {a.shape}{'^T' if transpose_a else ''} and "
                     f"{b.shape}{'^T' if transpose_b else ''}: inner sizes differ")
    if out is None:
        out = device.empty((m, n))
    case = CASES.get((transpose_a, transpose_b))
    if case is None:
        grid = (-(-n // device.define("GEMM_BN")), -(-m // device.define("GEMM_BM")))
        device.launch("sgemm_tiled", grid, m, n, k, 1.0, a, int(transpose_a), b, int(transpose_b), beta, out)
        return out
    rows = device.define("SKINNY_ROWS")
    skinny = m <= rows and case in ("nt", "nn")
    expect(version != "skinny" or skinny, f"the skinny product takes at most {rows} rows and no transposed A, "
                                          f"not {m} rows ({case})")
    if version == "skinny" or (version == "engine" and skinny):
        return _skinny_product(device, a, b, case, m, n, k, out, beta)
    wide_rows = device.define("IG_WIDE_BM")
    wide = m <= wide_rows and case in ("nt", "nn")
    if version == "wide" and not wide:  # (the message formatted only then: this runs at every product)
        raise KernelError(f"the wide product takes at most {wide_rows} rows and no transposed A, not {m} rows ({case})")
    if version == "wide" or (version == "engine" and wide and ENGINE_WIDE):  # (the engine's past the skinny rows)
        partial = wide_products_device(device, a[None], b[None], transpose_b)
        return sum_slices(device, partial, out, partial.shape[1], beta)
    grid = (-(-n // device.define("VEC_BN")), -(-m // device.define("VEC_BM")))
    if version not in ("splitk", "engine"):
        device.launch(f"sgemm_{version}_{case}", grid, m, n, k, 1.0, a, b, beta, out)
        return out
    whole, split, _, depth = TILED["pipelined" if version == "splitk" else ENGINE_TILED]
    length, splits = split_k_slices(grid[0] * grid[1], k, device.define(depth),
                                    device.concurrent_blocks(f"{split}_{case}"), result=m * n,
                                    tile=device.define("VEC_BM") * device.define("VEC_BN"))
    if splits == 1:
        device.launch(f"{whole}_{case}", grid, m, n, k, 1.0, a, b, beta, out)
        return out
    partial = device.empty((splits, m, n))
    device.launch(f"{split}_{case}", grid + (splits,), m, n, k, length, a, b, partial)
    return sum_slices(device, partial, out, splits, beta)


def batched_product_device(device: Device, a, b, transpose_b=False):
    """The products a[z] @ b[z] (b[z]^T with transpose_b) for every z of (B, M, K) and
    (B, K, N) arrays ((B, N, K) with transpose_b), in one launch of gemm.cu's batched
    kernel of the ENGINE_TILED rung (blockIdx.z the product and its reduction slice), the
    reduction split by split_k_slices where the tiles alone are too few blocks: (B, splits,
    M, N) partial planes whose sum over axis 1 is the products (the caller adds them,
    Winograd's transforms on their way)."""
    count, m, k = a.shape
    n = b.shape[1] if transpose_b else b.shape[2]
    expected = (count, n, k) if transpose_b else (count, k, n)
    expect(b.shape == expected, f"batched product of {a.shape} and {b.shape}{'^T' if transpose_b else ''}: "
                                f"expected the second to have shape {expected}")
    _, _, batched, depth = TILED[ENGINE_TILED]
    kernel = f"{batched}_{'nt' if transpose_b else 'nn'}"
    grid = (-(-n // device.define("VEC_BN")), -(-m // device.define("VEC_BM")))
    length, splits = split_k_slices(count * grid[0] * grid[1], k, device.define(depth),
                                    device.concurrent_blocks(kernel), result=count * m * n,
                                    tile=device.define("VEC_BM") * device.define("VEC_BN"))
    partial = device.empty((count, splits, m, n))
    device.launch(kernel, grid + (count * splits,), m, n, k, length, splits, a, m * k, b, k * n, partial)
    return partial


def wide_products_device(device: Device, a, b, transpose_b=False):
    """The products a[z] @ b[z] (b[z]^T with transpose_b) of at most IG_WIDE_BM rows, for
    every z of (B, M, K) and (B, K, N) arrays ((B, N, K) with transpose_b), in one launch of
    conv2d.cu's products_wide kernels on the implicit GEMM's 64 x 256 tile, the reduction
    split by split_k_slices where the tiles alone are too few blocks: (B, splits, M, N)
    partial planes whose sum over axis 1 is the products (the caller adds them)."""
    count, m, k = a.shape
    n = b.shape[1] if transpose_b else b.shape[2]
    if m > device.define("IG_WIDE_BM") or max(m, n) * k >= 2 ** 31:  # (messages formatted only then)
        raise KernelError(f"the wide products take at most {device.define('IG_WIDE_BM')} rows and operands of under "
                          f"2^31 elements (32-bit offsets), not {m} x {k} and {n} x {k}")
    kernel, width = f"products_wide_{'nt' if transpose_b else 'nn'}", device.define("IG_WIDE_BN")
    columns = -(-n // width)
    length, splits = split_k_slices(count * columns, k, device.define("IG_BK"), device.concurrent_blocks(kernel),
                                    result=count * m * n, tile=device.define("IG_WIDE_BM") * width)
    partial = device.empty((count, splits, m, n))
    device.launch(kernel, (columns, 1, count * splits), a, b, partial, m, n, k, length, splits)
    return partial


def _skinny_product(device, a, b, case, m, n, k, out, beta):
    """A product of at most SKINNY_ROWS rows on gemm.cu's v10 kernels: nt a warp per output
    column; nn a thread per column, the reduction split for waves of eight blocks an SM (a
    memory-bound kernel wants many loads in flight; slices of at least 64) and the planes
    summed into out."""
    threads = device.define("SKINNY_THREADS")
    if case == "nt":
        device.launch("sgemm_skinny_nt", -(-n // (threads // 32)), m, n, k, 1.0, a, b, beta, out)
        return out
    columns = -(-n // threads)
    length, splits = split_k_slices(columns, k, 1, 8 * device.launcher.multiprocessors, min_depth=64)
    partial = device.empty((splits, m, n))
    device.launch("sgemm_skinny_nn", (columns, splits), m, n, k, length, a, b, partial)
    return sum_slices(device, partial, out, splits, beta)


def sum_slices(device, partial, out, splits, beta=0.0):
    """out = the sum of partial's `splits` planes, in order, plus beta out (gemm.cu's
    sgemm_sum_splits); out."""
    device.elementwise("sgemm_sum_splits", out.size, partial, out, out.size, splits, 1.0, beta)
    return out


def sliced_reduction(device, kernel, out, tiles, depth, min_depth, launch):
    """out, reduced by the memory-bound `kernel` whose `tiles` blocks each reduce `depth`
    values, the reduction split into slices for a wave of as many blocks as the GPU holds of
    it (split_k_slices, which counts no partial plane's cost for such a kernel; the blocks an
    SM from its __launch_bounds__: a memory-bound loop wants every load in flight it can
    have, and two blocks of 256 threads an SM, the plan before, kept about a quarter of an
    SM's threads): launch(partial, length, splits) writes one plane a slice, into out itself
    where there is one, else summed into it."""
    length, splits = split_k_slices(tiles, depth, 1, device.concurrent_blocks(kernel), min_depth=min_depth)
    partial = out if splits == 1 else device.empty((splits,) + tuple(out.shape))
    launch(partial, length, splits)
    return out if splits == 1 else sum_slices(device, partial, out, splits)


def channel_sums(device, kernel, out, inputs, n, c, plane, last):
    """out (c sums, or rows of c), by `kernel`, one of channel_sums.cuh's: a block a channel
    and slice of its n plane values, launched as kernel(*inputs, partial, n, c, plane,
    slice, last) (the bias gradient, batchnorm's statistics and parameter gradients)."""
    return sliced_reduction(device, kernel, out, c, n * plane, device.define("REDUCE_THREADS"),
                            lambda partial, length, splits: device.launch(kernel, (c, splits), *inputs, partial, n, c,
                                                                          plane, length, last))


GEMM = OpFamily("gemm", ("gemm.cu",), numpy=dict(product=gemm_product), device=dict(product=gemm_product_device))
