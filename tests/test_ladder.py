"""The kernel ladders (kernels/ladder.py) on the emulator: every version of every family
against NumPy, on sizes that are not multiples of any tile and on sizes where the float4
paths run; and the emulator's support for what the fast versions use."""
import numpy as np
import pytest

from deepinside.kernels import depthwise, ladder
from deepinside.kernels.family import Device
from deepinside.kernels.launch import EmulatorLauncher

SIZES = [(67, 45, 33), (132, 68, 44), (20, 36, 1100), (4, 36, 1100)]  # split-K splits the last two; the last is skinny


@pytest.fixture(scope="module")
def device():
    return Device(EmulatorLauncher())


def test_every_gemm_version_matches_numpy_in_every_case_it_handles(device):
    rows = ladder.run_gemm(device, SIZES, 1, ladder.wall_clock)
    assert {r["version"] for r in rows} == {rung.name for rung in ladder.GEMM_LADDER}
    skinny = next(rung for rung in ladder.GEMM_LADDER if rung.name == "sgemm_skinny")
    # the skinny rung on one of the 4 sizes (4 rows), the wide one on two (20 and 4 rows)
    assert len(rows) == len(SIZES) * sum(len(rung.transposes) for rung in ladder.GEMM_LADDER) - 3 * 2 - 2 * 2
    assert [(r["shape"], r["case"]) for r in rows if r["version"] == "sgemm_skinny"] == [
        ("4x36x1100", "NN"), ("4x36x1100", "NT")]
    assert [(r["shape"], r["case"]) for r in rows if r["version"] == "sgemm_wide"] == [
        ("20x36x1100", "NN"), ("20x36x1100", "NT"), ("4x36x1100", "NN"), ("4x36x1100", "NT")]
    assert skinny.rows_at_most == 8
    assert [r for r in rows if not r["ok"]] == []
    assert "| sgemm_vectorized | TN | 132x68x44 | yes |" in ladder.table(rows)


def test_the_ladder_catches_a_version_that_leaves_elements_unwritten(device, monkeypatch):
    def half_written(device, a, b, c, transpose_a, transpose_b):
        c[: c.shape[0] // 2] = (a @ b)[: c.shape[0] // 2]
    monkeypatch.setattr(ladder, "GEMM_LADDER", [ladder.Rung("broken", "writes half of C", half_written)])
    rows = ladder.run_gemm(device, SIZES[:1], 1, ladder.wall_clock)
    assert [r["ok"] for r in rows] == [False]
    assert ladder.main(["gemm", "--emulator"]) == 1


def test_a_version_is_checked_on_poisoned_outputs_and_timed_without_the_fills():
    class ZeroedLauncher:  # allocations start at zero, so that a fill shows
        xp = np

        def empty(self, shape, dtype):
            return np.zeros(shape, dtype)

    device, poisoned = ladder.PoisonedDevice(ZeroedLauncher()), []

    def version():
        poisoned.append(bool(np.isnan(device.empty(3)).all()))
        return np.ones(2)

    def timer(call, repeats):
        call()
        return 0.5

    row = ladder._validated_row("v", "case", "shape", version, np.ones(2), 2.0, timer, 1, np)
    assert poisoned == [True, False] and row["ok"] and row["gflops"] == 4e-9
    assert np.isnan(device.empty(3)).all()  # poisoned again after the timing


@pytest.mark.parametrize("direction", ladder.CONV_DIRECTIONS)
def test_every_convolution_version_matches_numpy(direction):
    from deepinside.kernels import conv2d
    rows = ladder.run_conv(direction, EmulatorLauncher(), ladder.EMULATOR_CONVOLUTIONS, 1, ladder.wall_clock)
    kind = direction.removeprefix("conv_")
    fused = [] if kind == "backward_weights" else ["winograd_fused4", "winograd_fused"]  # (weight gradients unfused)
    versions = ["direct", "im2col", "implicit", "winograd4", "winograd"] + fused + ["engine"] + [
        f"engine {v}" for v in conv2d.IMPLICIT_VERSIONS[kind] if v != conv2d.ENGINE_IMPLICIT[kind]]  # the engine's others
    assert len(versions) == 8 + len(fused)
    # the first shape (3 input channels, 3x3, stride 1) has the few-channel choice's others too
    few = [] if kind == "backward_weights" else [
        f"engine {v}" for v in conv2d.few_channel_versions(kind)[0] if v != conv2d.few_channel_versions(kind)[1]]
    assert [r["version"] for r in rows] == versions + few + versions + versions
    assert len(few) == {"forward": 1, "backward_data": 2, "backward_weights": 0}[kind]
    assert [r for r in rows if not r["ok"]] == []


@pytest.mark.parametrize("five", [False, True])
def test_the_engine_is_also_timed_off_winograd_where_it_takes_it(monkeypatch, five):
    """With the engine's forward on F(2x2, 3x3) from 1 channel, the 3x3 stride-1 shape gets
    a row of the engine off Winograd (what kernels.choices weighs Winograd against); the 5x5
    stride-1 one too where the engine's forward takes F(2x2, 5x5) from 1 channel; the 5x5
    stride-2 one, where Winograd does not apply, none; nor the weight gradient, whose
    threshold is unset."""
    from deepinside.kernels import conv2d
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_CHANNELS", dict.fromkeys(conv2d.ENGINE_WINOGRAD_CHANNELS)
                        | {"forward": 1})
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_5X5_CHANNELS", dict.fromkeys(conv2d.ENGINE_WINOGRAD_5X5_CHANNELS)
                        | {"forward": 1 if five else None})
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_TILE", 2)  # F(4x4, 3x3) saves no work on 130 x 12 x 11
    rows = ladder.run_conv("conv_forward", EmulatorLauncher(), ladder.EMULATOR_CONVOLUTIONS, 1, ladder.wall_clock)
    off = [r["shape"] for r in rows if r["version"] == ladder.WITHOUT_WINOGRAD]
    assert off == [rows[0]["shape"]] + ([rows[-1]["shape"]] if five else []) and "k3 s1" in off[0]
    assert "k5 s1" in rows[-1]["shape"] and [r for r in rows if not r["ok"]] == []
    assert ladder.run_conv("conv_backward_weights", EmulatorLauncher(), ladder.EMULATOR_CONVOLUTIONS[:1], 1,
                           ladder.wall_clock)[-1]["version"] == "engine async"


def test_every_relu_version_gives_the_numpy_result_exactly(device):
    rows = ladder.run_relu(device, [1003, 4099], 1, ladder.wall_clock)
    assert [r["version"] for r in rows[:8]] == ["relu_forward", "relu_forward_vec4", "relu_backward",
                                                "relu_backward_vec4", "relu6_forward", "relu6_forward_vec4",
                                                "relu6_backward", "relu6_backward_vec4"]
    assert len(rows) == 16 and [r for r in rows if not r["ok"]] == []


def test_max_pool_forward_and_backward_give_the_numpy_result_exactly(device):
    rows = ladder.run_maxpool(device, [(2, 3, 9, 11), (1, 5, 16, 16)], 1, ladder.wall_clock)
    odd = ["maxpool_forward", "maxpool_forward_planes", "maxpool_backward", "maxpool_backward_planes"]
    even = ["maxpool_forward", "maxpool_forward_planes", "maxpool_forward_2x2", "maxpool_forward_2x2_pairs",
            "maxpool_backward", "maxpool_backward_planes", "maxpool_backward_2x2",
            "maxpool_backward_2x2_pairs"]  # v3 and v4 where the windows tile the input
    assert [r["version"] for r in rows] == odd + even
    assert [r for r in rows if not r["ok"]] == []


def test_the_depthwise_kernels_match_numpy_in_every_direction(device):
    rows = ladder.run_depthwise(device, ladder.EMULATOR_DEPTHWISE, 1, ladder.wall_clock)
    # v4 (planes) where a block's planes and rows of results fit its shared memory: not the
    # 20 x 35 and 41 x 37 maps (256 rows of 35 and 19 results, 14 planes of 700 and 1517)
    fits = [True, True, False, False, True, True]

    def versions(stride, fit):
        planes = ["depthwise_forward_planes"] if fit else []
        forward = ["depthwise_forward", "depthwise_forward_tiled", "depthwise_forward_rows"] + planes
        data = (["depthwise_backward_data", "depthwise_backward_data_tiled", "depthwise_backward_data_rows"]
                + [version.replace("forward", "backward_data") for version in planes] if stride == 1
                else ["depthwise_backward_data", "depthwise_backward_data_parity", "depthwise_backward_data_quads"])
        return forward + data + ["depthwise_backward_weights", "depthwise_backward_weights_channel",
                                 "depthwise_backward_weights_shuffle", "depthwise_backward_weights_rows"]
    assert {(shape[4], shape[5]) for shape in ladder.EMULATOR_DEPTHWISE} == set(depthwise.ROW_KERNELS)
    assert [r["version"] for r in rows] == [version for shape, fit in zip(ladder.EMULATOR_DEPTHWISE, fits)
                                            for version in versions(shape[5], fit)]
    assert [r for r in rows if not r["ok"]] == [] and max(r["error"] for r in rows) < 1e-5


def test_every_other_elementwise_kernel_is_validated_and_a_wrong_one_caught(device, monkeypatch):
    """The element-wise ladder: batchnorm's, padding's, the global pool's and LRN's rungs (in
    their order, each direction)
    and every other element-wise kernel once, against NumPy in float64; a result 0.1% off
    (LRN's backward) fails its row alone."""
    from deepinside.kernels import lrn
    rows = ladder.run_elementwise(device, ladder.EMULATOR_ELEMENTWISE, 1, ladder.wall_clock)
    versions = [r["version"] for r in rows]
    for prefix, later in (("batchnorm_forward", ["_carried", "_carried_rsqrt"]),
                          ("batchnorm_backward_data", ["_carried", "_carried_rsqrt"]), ("pad_forward", ["_carried"]),
                          ("pad_backward", ["_carried"]), ("lrn_forward", ["_columns", "_columns_fast"]),
                          ("lrn_backward", ["_columns", "_columns_fast"])):
        rungs = [v for v in versions if v.startswith(prefix)]
        assert list(dict.fromkeys(rungs)) == [prefix] + [prefix + suffix for suffix in later], rungs
    for direction in ("forward", "backward"):
        assert versions.index(f"adaptive_avgpool_{direction}") < versions.index(f"global_avgpool_{direction}")
    assert {"batchnorm_statistics", "batchnorm_backward_sums", "channel_sum", "add_forward", "dropout_forward",
            "dropout_backward", "sgd_update"} < set(versions)
    assert len(rows) == 34 and [r for r in rows if not r["ok"]] == []
    backward = lrn.lrn_backward_device
    monkeypatch.setattr(lrn, "lrn_backward_device", lambda *a, **k: backward(*a, **k) * 1.001)
    rows = ladder.run_elementwise(device, ladder.EMULATOR_ELEMENTWISE, 1, ladder.wall_clock)
    assert [r["version"] for r in rows if not r["ok"]] == ["lrn_backward", "lrn_backward_columns",
                                                            "lrn_backward_columns_fast"]


def test_the_command_runs_the_gemm_ladder_on_the_emulator(capsys):
    assert ladder.main(["gemm", "--emulator"]) == 0
    output = capsys.readouterr().out
    handled = sum(rung.handles(m, *case) for m, _, _ in ladder.EMULATOR_GEMMS for rung in ladder.GEMM_LADDER
                  for case in rung.transposes)
    assert output.count("| yes |") == handled


VECTOR_KERNEL = r'''
extern "C" __global__ void gather4(const float* __restrict__ x, float* __restrict__ y, int n4) {
  __shared__ __align__(16) float staged[4 * 32];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (i < n4) v = __ldg(reinterpret_cast<const float4*>(x) + i);
  *reinterpret_cast<float4*>(&staged[4 * threadIdx.x]) = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int q = 0; q < 4; ++q) total += staged[4 * threadIdx.x + q];
  const float2 pair = make_float2(total, v.w);
  if (i < n4) { y[2 * i] = pair.x; y[2 * i + 1] = pair.y; }
}
'''


def test_the_emulator_runs_vector_loads_ldg_aligned_shared_memory_and_unroll_pragmas(tmp_path, monkeypatch):
    from deepinside.kernels import launch
    (tmp_path / "vector.cu").write_text(VECTOR_KERNEL)
    monkeypatch.setattr(launch, "sources", lambda: [str(tmp_path / "vector.cu")])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    x = np.random.default_rng(0).standard_normal(4 * 37).astype(np.float32)
    y = np.full(2 * 37, np.nan, np.float32)
    EmulatorLauncher(workers=1).launch("gather4", 2, 32, x, y, 37)
    groups = x.reshape(37, 4)
    assert np.allclose(y[0::2], groups.sum(axis=1), atol=1e-6) and np.array_equal(y[1::2], groups[:, 3])


def test_a_peer_above_the_fp32_peak_is_reported_and_not_compared():
    row = {"version": "v", "case": "NN", "shape": "4096x4096x4096", "ok": True, "error": 0.0, "ms": 2.0,
           "gflops": 50e3, "peer_ms": 1.0, "ratio_to_peer": 0.5}
    honest, tf32 = dict(row, peer_gflops=60e3), dict(row, peer_gflops=100e3)
    assert "| 1.000 | 0.50 |" in ladder.table([honest], peak=67.0)
    assert "peer above the FP32 peak: not an FP32 peer, not used" in ladder.table([tf32], peak=67.0)


def test_the_fastest_version_of_each_case_and_shape():
    """The summary a GPU run prints under each ladder: per case and shape the fastest
    version that validated (a faster one that failed does not count) and the runner-up's
    time over it."""
    rows = [{"version": "v1", "case": "NN", "shape": "8x8x8", "ok": True, "ms": 2.0},
            {"version": "v2", "case": "NN", "shape": "8x8x8", "ok": True, "ms": 1.0},
            {"version": "v3", "case": "NN", "shape": "8x8x8", "ok": False, "ms": 0.5},
            {"version": "v1", "case": "TN", "shape": "8x8x8", "ok": True, "ms": 3.0}]
    assert ladder.fastest(rows).splitlines()[2:] == ["| NN | 8x8x8 | v2 | 1.000 | v1 | 2.00 |",
                                                     "| TN | 8x8x8 | v1 | 3.000 | (none) |  |"]


def test_the_randomised_sweep_passes_and_catches_a_wrong_result(monkeypatch, capsys):
    """python -m deepinside.kernels.sweep: a few random draws of every family pass on the
    emulator; with one kernel's result made wrong (max-pool's backward, 1% too large) the
    sweep names that case and exits 1."""
    from deepinside.kernels import maxpool, sweep
    assert sweep.main(["--trials", "2", "--seed", "3"]) == 0
    right = maxpool.maxpool_backward_device
    monkeypatch.setattr(maxpool, "maxpool_backward_device", lambda *a, **k: right(*a, **k) * 1.01)
    assert sweep.main(["--trials", "1", "--seed", "3"]) == 1
    assert "FAILED maxpool v1 backward" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["sweep", "--gpu"], ["ladder", "gemm"]])
def test_a_gpu_run_without_a_gpu_says_so_in_one_line(command):
    """The ladder and the sweep asked for a GPU on a machine without a usable one: one line
    naming the tool and the reason, exit status 1, no traceback."""
    import subprocess
    import sys
    from deepinside.kernels.launch import cuda_available
    if cuda_available():
        pytest.skip("a GPU is usable here")
    tool, *arguments = command
    result = subprocess.run([sys.executable, "-m", f"deepinside.kernels.{tool}", *arguments], capture_output=True,
                            text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m deepinside.kernels.{tool}: the cuda backend")
