import os

import numpy as np
import pytest

MEDIANS = {}  # (group, implementation) -> median seconds
RATIOS = {}  # group -> (labels, the two medians, the median ratio and its quartiles) of interleaved blocks


def pytest_configure(config):
    """Both sides of every comparison run in this one process and share glibc's allocator,
    which hands out blocks of a few MB as fresh pages or as freed memory depending on what
    the process did before: in one trial PyTorch's EfficientNet-Lite0 pass took 29 or 21 ms,
    ours 45 or 35 ms, with nothing changed but that history. The setting the `deepinside`
    command runs with (engine.keep_freed_memory) makes the figures independent of it."""
    from deepinside import engine

    engine.keep_freed_memory()


@pytest.fixture(scope="session")
def network_pairs():
    """name -> (our network, its float32 PyTorch twin), built once: CNN-F and VGG-16 with
    random weights, EfficientNet-Lite0 with its ImageNet weights."""
    import torch

    from deepinside import engine
    from deepinside import models
    from torch_reference import torch_twin

    engine.set_backend("numpy")
    pairs = {}
    for name, build in (("cnn_f", models.cnn_f), ("vgg16", models.vgg16)):
        engine.nn.manual_seed(0)
        net = build().eval()
        pairs[name] = (net, torch_twin(net, torch.float32))
    lite0 = models.load("efficientnet-lite0").net
    pairs["efficientnet_lite0"] = (lite0, torch_twin(lite0, torch.float32))
    return pairs


@pytest.fixture(scope="session")
def flower_224():
    """The shipped photograph, short side 224, centre 224x224."""
    from deepinside import viz

    image = viz.resize_short_side(viz.load_image(os.path.join(os.path.dirname(viz.__file__), "samples", "flower.png")), 224)
    left = (image.shape[1] - 224) // 2
    return np.ascontiguousarray(image[:, left : left + 224])


@pytest.fixture
def record_median():
    def record(benchmark, group, implementation):
        MEDIANS[(group, implementation)] = benchmark.stats.stats.median
    return record


@pytest.fixture
def record_ratio():
    """Records interleaved timings, block by block: ours and a peer's (PyTorch's unless
    `labels` say otherwise)."""
    def record(benchmark, group, ours, theirs, labels=("ours", "torch")):
        ratios = ours / theirs
        RATIOS[group] = (labels, np.median(ours), np.median(theirs), np.median(ratios), np.percentile(ratios, [25, 75]))
        benchmark.extra_info.update(labels=list(labels), first_median_s=float(np.median(ours)),
                                    second_median_s=float(np.median(theirs)), median_ratio=float(np.median(ratios)))
    return record


def blas_in_use():
    """NumPy's BLAS as it runs in this process: library, version, kernel and threads
    (OPENBLAS_CORETYPE in the environment chooses the kernel; see bench/README.md)."""
    from threadpoolctl import threadpool_info

    return "; ".join(f"{info.get('internal_api')} {info.get('version')} {info.get('architecture', '')} "
                     f"{info.get('num_threads')} threads" for info in threadpool_info()
                     if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""))


def pytest_terminal_summary(terminalreporter):
    groups = sorted({group for group, _ in MEDIANS})
    if groups:
        terminalreporter.section("medians and ratios to PyTorch (ours / torch)")
        terminalreporter.write_line(f"NumPy's BLAS: {blas_in_use()}")
    for group in groups:
        ours, theirs = MEDIANS.get((group, "ours")), MEDIANS.get((group, "torch"))
        line = f"{group:<34} ours {ours:8.4f} s" if ours else f"{group:<34}"
        if ours and theirs:
            line += f"   torch {theirs:8.4f} s   ratio {ours / theirs:5.2f}"
        terminalreporter.write_line(line)
    if RATIOS:
        terminalreporter.section("interleaved: medians and the median of the blocks' ratios (first / second)")
    for group, ((first, second), ours, theirs, ratio, (low, high)) in sorted(RATIOS.items()):
        terminalreporter.write_line(f"{group:<34} {first} {ours:8.4f} s   {second} {theirs:8.4f} s   "
                                    f"ratio {ratio:5.2f} (middle half of the blocks {low:.2f}-{high:.2f})")
