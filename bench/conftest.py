import os
import sys

import pytest

# The PyTorch twins of our networks live with the tests that trust them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

MEDIANS = {}  # (group, implementation) -> median seconds


@pytest.fixture
def record_median():
    def record(benchmark, group, implementation):
        MEDIANS[(group, implementation)] = benchmark.stats.stats.median
    return record


def pytest_terminal_summary(terminalreporter):
    groups = sorted({group for group, _ in MEDIANS})
    if not groups:
        return
    terminalreporter.section("ratios to PyTorch (median seconds, ours / torch)")
    for group in groups:
        ours, theirs = MEDIANS.get((group, "ours")), MEDIANS.get((group, "torch"))
        if ours and theirs:
            terminalreporter.write_line(f"{group:<28} ours {ours:8.4f} s   torch {theirs:8.4f} s   "
                                        f"ratio {ours / theirs:5.2f}")
