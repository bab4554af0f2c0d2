"""bench/host_overhead.py: a saliency pass on the device code path without a GPU, its
launches counted (in a process of its own: it replaces the emulator's launch with a
no-op)."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_cnn_f_pass_counts_its_launches_kernel_by_kernel():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "host_overhead.py"), "cnn_f", "--repeats",
                             "2", "--by-kernel"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    total = int(re.search(r"(\d+) launches", result.stdout).group(1))
    by_kernel = dict((name, int(count)) for name, count in re.findall(r"^  (\w+): (\d+)$", result.stdout, re.MULTILINE))
    assert sum(by_kernel.values()) == total
    # CNN-F: two LRN layers (after conv1 and conv2), seven ReLUs (five convolutions, fc6, fc7)
    lrn = {direction: sum(count for name, count in by_kernel.items() if name.startswith(f"lrn_{direction}"))
           for direction in ("forward", "backward")}
    assert lrn == {"forward": 2, "backward": 2}
    assert (by_kernel["relu_forward_vec4"], by_kernel["relu_backward_vec4"]) == (7, 7)
