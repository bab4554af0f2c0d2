"""Single-precision matrix products C = op(A) op(B) + beta C, the workhorse of the fully
connected layers and of the convolutions' im2col path (gemm.cu has the tiling)."""
from .family import Device, OpFamily, expect


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
# products use ENGINE_SGEMM: the vectorised rung, which the ladder validates on the emulator;
# which of vectorized, warptile and pipelined is fastest on a GPU is for the GPU ladder run
# to say (bench/README.md), and this name to follow.
SPECIALISED_SGEMMS = ("vectorized", "warptile", "pipelined")
ENGINE_SGEMM = "vectorized"
CASES = {(False, False): "nn", (True, False): "tn", (False, True): "nt"}


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
    else:
        grid = (-(-n // device.define("VEC_BN")), -(-m // device.define("VEC_BM")))
        device.launch(f"sgemm_{version}_{case}", grid, m, n, k, 1.0, a, b, beta, out)
    return out


GEMM = OpFamily("gemm", ("gemm.cu",), numpy=dict(product=gemm_product), device=dict(product=gemm_product_device))
