"""bench/profile_kernels.py: the launches ncu profiles run, on the emulator at small sizes,
the kernels they are named after; the summary reads ncu's raw CSV."""
import os
import sys

import pytest

from deepinside.kernels.launch import EmulatorLauncher

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import profile_kernels  # noqa: E402 - bench/ is not a package


class RecordingLauncher(EmulatorLauncher):
    def __init__(self):
        super().__init__()
        self.launched = []

    def launch(self, kernel, grid, block, *arguments):
        self.launched.append(kernel)
        super().launch(kernel, grid, block, *arguments)


def test_each_profiled_launch_runs_the_kernel_it_is_named_after():
    launcher = RecordingLauncher()
    expected = ["sgemm_async_nn", "sgemm_8x16_async_nn", "winograd_fused_4x4", "winograd_fused_2x2",
                "conv2d_backward_data_few_channels", "conv2d_backward_data_few_channels_async",
                "depthwise_forward_rows", "depthwise_forward_planes", "depthwise_forward_rows",
                "depthwise_forward_planes", "depthwise_forward_rows", "depthwise_backward_weights_channel_k3",
                "depthwise_backward_weights_shuffle_k3", "depthwise_backward_weights_rows", "depthwise_backward_data_parity",
                "depthwise_backward_data_quads", "maxpool_forward_2x2",
                "maxpool_backward_2x2", "maxpool_forward_2x2_pairs", "maxpool_backward_2x2_pairs"]
    calls = list(profile_kernels.launches(launcher, small=True))
    assert len(calls) == len(expected)
    for (what, call), kernel in zip(calls, expected):
        launcher.launched.clear()
        call()
        assert kernel in launcher.launched, (what, launcher.launched)


def test_the_summary_reads_ncus_raw_csv(tmp_path):
    """A raw page as ncu writes it with --csv --log-file: its own lines first, then a row of
    metric names, one of units, one a kernel (numbers with thousands separators)."""
    stall = "smsp__average_warps_issue_stalled_{}_per_issue_active.ratio"
    names = ["ID", "Kernel Name", "Grid Size", "Block Size", "gpu__time_duration.sum",
             "dram__throughput.avg.pct_of_peak_sustained_elapsed", "sm__throughput.avg.pct_of_peak_sustained_elapsed",
             "sm__warps_active.avg.pct_of_peak_sustained_active", "smsp__issue_active.avg.pct_of_peak_sustained_active",
             stall.format("long_scoreboard"), stall.format("barrier"), stall.format("mio_throttle"),
             stall.format("wait")]
    units = ["", "", "", "", "nsecond", "%", "%", "%", "%", "", "", "", ""]
    rows = [["0", "maxpool_backward_2x2", "(1, 1, 1)", "(256, 1, 1)", "125,500", "74.25", "20", "81.5", "12.25",
             "3.5", "0.25", "1.75", "0.5"],
            ["1", "sgemm_8x16_async_nn", "(32, 32, 1)", "(128, 1, 1)", "3,210,000", "12", "88.5", "24.9", "80",
             "0.1", "0.6", "0.9", "0.3"]]
    quoted = [",".join(f'"{cell}"' for cell in row) for row in [names, units] + rows]
    (tmp_path / "profile.csv").write_text("==PROF== Connected to process 7\n==PROF== Disconnected\n"
                                          + "\n".join(quoted) + "\n")
    table = profile_kernels.summary(tmp_path / "profile.csv").splitlines()
    assert table[0] == ("| kernel | grid | block | us | DRAM % | SM % | occupancy % | issue % | largest stalls |")
    assert table[2] == ("| maxpool_backward_2x2 | (1, 1, 1) | (256, 1, 1) | 125.5 | 74.2 | 20.0 | 81.5 | 12.2 | "
                        "long_scoreboard 3.50, mio_throttle 1.75, wait 0.50 |")
    assert table[3] == ("| sgemm_8x16_async_nn | (32, 32, 1) | (128, 1, 1) | 3210.0 | 12.0 | 88.5 | 24.9 | 80.0 | "
                        "mio_throttle 0.90, barrier 0.60, wait 0.30 |")
    (tmp_path / "empty.csv").write_text("==PROF== ERR_NVGPUCTRPERM\n")
    assert profile_kernels.summary(tmp_path / "empty.csv") == f"no kernel in {tmp_path / 'empty.csv'}\n"


def test_the_command_profiles_into_a_report_and_tabulates_its_raw_page(tmp_path, monkeypatch):
    """With a stand-in for ncu on PATH that records its arguments, writes the report where -o
    says and prints a raw page on --import: the profiling call leaves the clocks alone and
    runs this script's launches, and the table lands in profile.md."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "ncu"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
if [ "$1" = "--import" ]; then
  printf '"ID","Kernel Name","gpu__time_duration.sum"\\n"","","usecond"\\n"0","relu_forward_vec4","2.5"\\n'
  exit 0
fi
while [ "$1" != "-o" ]; do shift; done
touch "$2.ncu-rep"
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert profile_kernels.main([str(tmp_path / "out")]) == 0
    profiling, importing = calls.read_text().splitlines()
    assert profiling.startswith("--clock-control none --section=SpeedOfLight") and profiling.endswith(
        f"-o {tmp_path / 'out' / 'profile'} {sys.executable} {profile_kernels.__file__} --launch")
    assert importing == f"--import {tmp_path / 'out' / 'profile.ncu-rep'} --page raw --csv"
    assert "| relu_forward_vec4 |  |  | 2.5 |" in (tmp_path / "out" / "profile.md").read_text()


def test_without_ncu_the_command_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ncu on it
    with pytest.raises(SystemExit, match="ncu is not on this machine"):
        profile_kernels.main([str(tmp_path / "out")])
