"""GPU benchmarks of our CUDA kernels against PyTorch (cuDNN / cuBLAS, TF32 off), written
as a markdown table and raw JSON into an output folder:

  - every convolution layer shape of VGG-16, CNN-F and EfficientNet-Lite0 (its depthwise
    and pointwise ones among them; the architecture, no weights) at batch 1 and 64:
    forward, backward-data and backward-weights, ours (the engine's kernels) against cuDNN,
    and on 3x3 stride-1 layers also the two Winograd rungs' (F(2x2, 3x3) and F(4x4, 3x3))
    in each direction;
  - the fully connected layers of both nets, and SGEMM at 4096^3, against cuBLAS;
  - end-to-end saliency (forward, then backward to the input) of VGG-16, CNN-F and
    EfficientNet-Lite0 at batch 1 and 64 on our engine's cuda backend against PyTorch
    autograd, and at batch 1 also replayed as a CUDA graph (engine.capture).

Reports achieved TFLOP/s, the fraction of the card's FP32 peak and the ratio ours / peer.

    PYTHONPATH=tests python bench/gpu_kernels.py OUTDIR               # on a GPU (bench/gpu_check.sh runs it)
    PYTHONPATH=tests python bench/gpu_kernels.py OUTDIR --emulator    # tiny shapes on the CPU emulator, no peer
    PYTHONPATH=tests python bench/gpu_kernels.py OUTDIR --choices OUTDIR/engine_choices.json
        # with the engine's rung choices set as kernels.choices chose them from the same run's ladders

(tests/ holds the PyTorch twin of our networks, shared by the tests and the benchmarks.)
"""
import argparse
import functools
import json
import os
import statistics
import sys
import time

import numpy as np

from deepinside.kernels.conv2d import FUSED_WINOGRAD_TILES, WINOGRAD_TILES, winograd_modes
from deepinside.kernels.choices import apply as apply_choices, current as current_choices, load as load_choices
from deepinside.kernels.ladder import FP32_PEAK_TFLOPS
from deepinside.models.efficientnet import same_padding
from deepinside.kernels.launch import KernelError


VGG16_CONVS = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56),
               (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14),
               (512, 512, 14)]  # (in, out, size), 3x3, stride 1, pad 1
CNN_F_CONVS = [(3, 64, 224, 11, 4, 0), (64, 256, 27, 5, 1, 2), (256, 256, 13, 3, 1, 1), (256, 256, 13, 3, 1, 1),
               (256, 256, 13, 3, 1, 1)]  # (in, out, size, kernel, stride, pad)
WINOGRAD_MODES = tuple(WINOGRAD_TILES) + tuple(FUSED_WINOGRAD_TILES)  # the Winograd rungs timed beside the engine's
LINEARS = [("vgg16 fc6", 25088, 4096), ("vgg16 fc7", 4096, 4096), ("vgg16 fc8", 4096, 1000),
           ("cnn_f full6", 9216, 4096), ("cnn_f full7", 4096, 4096), ("cnn_f full8", 4096, 1000)]


def median_seconds(function, synchronise, repeats=5, warmup=1):
    for _ in range(warmup):
        function()
    synchronise()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronise()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_flops(n, c, o, out_size, k):
    return 2.0 * n * o * c * k * k * out_size * out_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--emulator", action="store_true", help="tiny shapes on the CPU emulator, without a peer")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--choices", metavar="JSON", help="the engine's rung choices to time (kernels.choices)")
    arguments = parser.parse_args(argv)
    os.makedirs(arguments.out, exist_ok=True)
    if arguments.choices:
        apply_choices(load_choices(arguments.choices))

    from deepinside import kernels
    from deepinside.kernels.launch import CudaLauncher, EmulatorLauncher

    if arguments.emulator:
        launcher, torch, device_name, peak = EmulatorLauncher(), None, "CPU emulator", None
        synchronise = lambda: None
        scale = 16  # channels / 16, images / 16 in size: shapes small enough for the CPU
        batches, repeats = (1, 2), 1
    else:
        from deepinside.kernels.ladder import honest_torch
        torch = honest_torch()
        launcher = CudaLauncher()
        device_name = torch.cuda.get_device_name()
        peak = next((v for k, v in FP32_PEAK_TFLOPS.items() if k in device_name), None)
        synchronise = lambda: (launcher.cupy.cuda.Device().synchronize(), torch.cuda.synchronize())
        scale, batches, repeats = 1, (1, 64), arguments.repeats
    ops = kernels.bind(kernels.Device(launcher))
    winograd = {mode: kernels.bind(kernels.Device(launcher, mode)).conv2d for mode in WINOGRAD_MODES}
    xp = launcher.xp
    # The operands are drawn where they are used, by the card on a GPU: batch 64's 2.2 G
    # floats took a host 40 s to draw. The peer reads the same memory (torch.as_tensor).
    rng = xp.random.RandomState(0)
    rows = []

    def record(group, shape, direction, flops, ours, peer):
        row = {"group": group, "shape": shape, "direction": direction, "gflop": flops / 1e9,
               "ours_ms": ours * 1e3, "ours_tflops": flops / ours / 1e12}
        if peer is not None:
            row.update(peer_ms=peer * 1e3, peer_tflops=flops / peer / 1e12, ratio_to_peer=peer / ours)
        if peak:
            row["fraction_of_peak"] = row["ours_tflops"] / peak
        rows.append(row)
        print(json.dumps(row), flush=True)

    def random(shape):
        return rng.standard_normal(shape).astype(xp.float32)

    def shared(array):  # the peer's view of one of our arrays
        return torch.as_tensor(array, device="cuda")

    def convolution_rows(batch, net, c, o, size, k, stride, before, after=None, groups=1, layers=1):
        """Rows of one convolution shape in every direction, ours and the peer's, padded
        `before` and `after` on each axis. An asymmetric padding (TensorFlow's SAME at
        stride 2) is given as an input padded beforehand, as the networks run it, except to
        our depthwise kernels, which take it themselves."""
        after = before if after is None else after
        out_size = (size + before + after - k) // stride + 1
        x, w = random((batch, c, size, size)), random((o, c // groups, k, k)) * 0.05
        gy = random((batch, o, out_size, out_size))
        conv = kernels.conv2d.convolution_ops(ops, xp, groups, c, o)
        padded, padding = x, before
        if before != after:
            padded, padding = xp.pad(x, ((0, 0), (0, 0), (before, after), (before, after))), 0
        ours_x, ours_padding = (x, (before, after)) if conv is ops.depthwise else (padded, padding)
        flops = conv_flops(batch, c // groups, o, out_size, k)
        shape = (f"{net} N{batch} C{c} O{o} {size}x{size} k{k} s{stride} p{before}"
                 + (f",{after}" if after != before else "") + (f" g{groups}" if groups > 1 else "")
                 + (f" ({layers} layers)" if layers > 1 else ""))
        ours = {
            "forward": lambda: conv.forward(ours_x, w, None, stride, ours_padding),
            "backward-data": lambda: conv.backward_data(gy, w, ours_x.shape, stride, ours_padding),
            "backward-weights": lambda: conv.backward_weights(gy, ours_x, w.shape, stride, ours_padding),
        }
        peers = {}
        if torch is not None:
            xt, wt, gyt = (shared(a) for a in (padded, w, gy))
            F = torch.nn.functional
            peers = {
                "forward": lambda: F.conv2d(xt, wt, None, stride, padding, 1, groups),
                "backward-data": lambda: torch.nn.grad.conv2d_input(padded.shape, wt, gyt, stride, padding, 1, groups),
                "backward-weights": lambda: torch.nn.grad.conv2d_weight(xt, w.shape, gyt, stride, padding, 1, groups),
            }
        # the Winograd rungs whose own Winograd runs on this layer (every one on 3x3 stride-1
        # layers, `winograd`'s F(2x2, 5x5) on 5x5 ones), in each direction, beside the engine's
        for mode in winograd_modes(k, stride) if groups == 1 else ():
            winograd_conv = winograd[mode]
            ours[f"forward ({mode})"] = functools.partial(winograd_conv.forward, ours_x, w, None, stride, padding)
            ours[f"backward-data ({mode})"] = functools.partial(winograd_conv.backward_data, gy, w, padded.shape,
                                                                stride, padding)
            if mode not in FUSED_WINOGRAD_TILES:  # (whose weight gradients are the unfused modes')
                ours[f"backward-weights ({mode})"] = functools.partial(winograd_conv.backward_weights, gy, ours_x,
                                                                       w.shape, stride, padding)
        peer_times = {}
        for direction, function in ours.items():
            mine = median_seconds(function, synchronise, repeats)
            plain = direction.split(" (")[0]
            if peers and plain not in peer_times:
                peer_times[plain] = median_seconds(peers[plain], synchronise, repeats)
            record("conv", shape, direction, flops, mine, peer_times.get(plain))

    def scaled(channels):
        return channels if channels <= 3 else max(1, channels // scale)

    convs = [("vgg16", c, o, s, 3, 1, 1) for c, o, s in VGG16_CONVS] + [("cnn_f",) + layer for layer in CNN_F_CONVS]
    for batch in batches:
        for net, c, o, size, k, stride, pad in convs:
            convolution_rows(batch, net, scaled(c), scaled(o), max(k, size // scale), k, stride, pad)
        for c, o, size, k, stride, groups, layers in efficientnet_convs():
            size = max(k, size // scale)
            before, after, _ = same_padding(size, k, stride)
            convolution_rows(batch, "efficientnet_lite0", scaled(c), scaled(o), size, k, stride, before, after,
                             scaled(groups), layers)

    for batch in batches:
        for name, fan_in, fan_out in LINEARS:
            fan_in, fan_out = max(1, fan_in // scale), max(1, fan_out // scale)
            x_d, w_d = random((batch, fan_in)), random((fan_out, fan_in))
            peer = None
            if torch is not None:
                xt, wt = shared(x_d), shared(w_d)
                peer = median_seconds(lambda: xt @ wt.T, synchronise, repeats)
            mine = median_seconds(lambda: ops.linear.forward(x_d, w_d, None), synchronise, repeats)
            record("linear", f"{name} N{batch} {fan_in}->{fan_out}", "forward", 2.0 * batch * fan_in * fan_out, mine, peer)

    size = 4096 // scale
    a_d, b_d = random((size, size)), random((size, size))
    peer = None
    if torch is not None:
        at, bt = shared(a_d), shared(b_d)
        peer = median_seconds(lambda: at @ bt, synchronise, repeats)
    record("sgemm", f"{size}^3", "C = A B", 2.0 * size ** 3, median_seconds(lambda: ops.gemm.product(a_d, b_d), synchronise, repeats), peer)

    if not arguments.emulator:
        saliency_rows(record, torch, synchronise, repeats)

    choices = current_choices()
    with open(os.path.join(arguments.out, "gpu_kernels.json"), "w") as handle:
        json.dump({"device": device_name, "fp32_peak_tflops": peak, "engine": choices, "rows": rows}, handle, indent=1)
    with open(os.path.join(arguments.out, "gpu_kernels.md"), "w") as handle:
        handle.write(markdown(device_name, peak, rows, choices))
    print(markdown(device_name, peak, rows, choices))
    return 0


def forward_macs(layers, shape):
    """(multiply-adds of the convolutions and fully connected layers, output shape) of a
    forward pass of `layers` on an input of `shape`."""
    from deepinside.engine import nn

    total = 0
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            macs, _ = forward_macs(layer, shape)
            total += macs
        out = layer.output_shape(shape)
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            total += layer.weight.data[0].size * int(np.prod(out))  # one output: a row of the weights
        shape = out
    return total, shape


def efficientnet_convs():
    """(in, out, size, kernel, stride, groups, layers) of EfficientNet-Lite0's distinct
    convolutions on a 224 x 224 input, in network order, and how many of its layers have
    each shape (all SAME-padded, as TensorFlow pads: models/efficientnet.py). The
    architecture only: no weights needed."""
    from deepinside import engine
    from deepinside.engine import nn
    from deepinside.models.efficientnet import efficientnet_lite

    with engine.use_backend("numpy"):
        net = efficientnet_lite(0)
    counts = {}

    def walk(layers, shape):
        size = shape[2]  # the convolution's input before any ZeroPad2d in front of it
        for layer in layers:
            if isinstance(layer, nn.Sequential):
                walk(layer, shape)
            elif isinstance(layer, nn.Conv2d):
                key = (layer.in_channels, layer.out_channels, size, layer.kernel_size, layer.stride, layer.groups)
                counts[key] = counts.get(key, 0) + 1
            shape = layer.output_shape(shape)
            if len(shape) == 4 and not isinstance(layer, nn.ZeroPad2d):
                size = shape[2]

    walk(net, (1, 3, 224, 224))
    return [key + (layers,) for key, layers in counts.items()]


def saliency_networks():
    """(name, our network) of VGG-16 and CNN-F with random weights and of
    EfficientNet-Lite0 with its ImageNet weights, where its package is importable (a GPU
    machine where nothing can be installed needs it carried on PYTHONPATH: gpu_check.sh)."""
    from deepinside import engine, models
    from deepinside.engine.errors import InputError

    with engine.use_backend("numpy"):
        yield "vgg16", models.vgg16().eval()
        yield "cnn_f", models.cnn_f().eval()
        try:
            yield "efficientnet_lite0", models.load("efficientnet-lite0").net
        except InputError as error:  # the weights package is missing
            print(f"EfficientNet-Lite0 skipped: {error}", flush=True)


def saliency_rows(record, torch, synchronise, repeats, backend="cuda", batches=(1, 64)):
    """Saliency passes (forward, then backward to the input) on our engine's `backend` (cuda;
    numpy for a dry run of this code) against PyTorch autograd, at each of `batches`, and at
    batch 1 also replayed as a CUDA graph (engine.capture)."""
    from deepinside import engine
    from torch_reference import torch_twin

    where = "cuda" if backend == "cuda" else "cpu"
    for name, net in saliency_networks():
        twin, twin64 = (torch_twin(net, dtype).to(where) for dtype in (torch.float32, torch.float64))
        net.to(backend)
        xp = net.backend.xp
        for batch in batches:
            image = np.random.default_rng(1).standard_normal((batch, 3, 224, 224), dtype=np.float32)
            seed = np.zeros((batch, 1000), np.float32)
            seed[:, 7] = 1
            image_d, seed_d = xp.asarray(image), xp.asarray(seed)
            image_t, seed_t = (torch.from_numpy(a).to(where) for a in (image, seed))

            def ours(image_d=image_d, seed_d=seed_d):
                x = engine.Tensor(image_d, requires_grad=True, backend=net.backend)
                return engine.grad(net(x), [x], grad_output=seed_d)[0]

            def theirs():
                x = image_t.clone().requires_grad_()
                return torch.autograd.grad(twin(x), x, seed_t)[0]

            def theirs_one_at_a_time():
                gradients = []
                for i in range(batch):
                    x = image_t[i : i + 1].clone().requires_grad_()
                    gradients.append(torch.autograd.grad(twin(x), x, seed_t[i : i + 1])[0])
                return torch.cat(gradients)

            # The reference is PyTorch in float64. The peer's own check: its batched float32
            # result against its one-image-at-a-time result (cuDNN picks algorithms by timing,
            # some of them Winograd or FFT ones well off the direct sum: 7e-2 seen on an H200).
            x64 = image_t.double().requires_grad_()
            reference = torch.autograd.grad(twin64(x64), x64, seed_t.double())[0].cpu().numpy()
            scale = float(abs(reference).max())

            def off(result):
                return float(abs(np.asarray(result, np.float64) - reference).max()) / scale
            batched, one_at_a_time = theirs().cpu().numpy(), theirs_one_at_a_time().cpu().numpy()
            flops = 2 * 2 * forward_macs(net, image.shape)[0]  # forward plus backward-data, 2 FLOPs a MAC
            shape = (f"{name} N{batch} (max error / max against float64: ours {off(engine.to_numpy(ours())):.1e}, "
                     f"PyTorch batched {off(batched):.1e}, PyTorch one image at a time {off(one_at_a_time):.1e})")
            peer = median_seconds(theirs, synchronise, repeats)
            record("saliency", shape, "forward + input gradient", flops, median_seconds(ours, synchronise, repeats), peer)
            if batch == 1:
                replay = engine.capture(ours, image_d, seed_d, backend=net.backend)
                replayed = off(engine.to_numpy(replay(image_d, seed_d)))
                record("saliency", f"{name} N1 as a CUDA graph (max error / max against float64 {replayed:.1e})",
                       "forward + input gradient", flops, median_seconds(lambda: replay(image_d, seed_d), synchronise,
                                                                         repeats), peer)
        net.to("numpy")


def above_peak(row, peak):
    """Whether the peer ran faster than the card's FP32 peak allows for the FLOPs counted:
    not plain FP32 multiply-adds (TF32 tensor cores, or a Winograd or FFT convolution that
    does fewer multiplications than the direct sum)."""
    return bool(peak) and row.get("peer_tflops", 0.0) > peak


def target_summary(rows, peak):
    """The issue's targets as measured in this run: for VGG-16's 13 convolutions at batch 64
    the median and the lowest of peer time / our time in each direction (all layers, and
    the layers whose peer stays under the FP32 peak; the Winograd rungs beside the engine's),
    SGEMM 4096^3, and the saliency passes."""
    lines = ["| target | measured (peer time / our time) |", "| --- | --- |"]
    wanted_by_direction = {"forward": 0.8, "backward-data": 0.8, "backward-weights": 0.7}
    for direction, wanted in list(wanted_by_direction.items()) + [
            (f"{direction} ({mode})", wanted) for mode in WINOGRAD_MODES
            for direction, wanted in wanted_by_direction.items()]:
        layers = [r for r in rows if r["group"] == "conv" and r["shape"].startswith("vgg16 N64")
                  and r["direction"] == direction and "ratio_to_peer" in r]
        if not layers:
            continue
        honest = [r["ratio_to_peer"] for r in layers if not above_peak(r, peak)]
        ratios = [r["ratio_to_peer"] for r in layers]
        lines.append(f"| VGG-16 N64 conv {direction}: median >= {wanted}, no layer < 0.5 | median "
                     f"{statistics.median(ratios):.2f}, lowest {min(ratios):.2f} over {len(ratios)} layers; peer under "
                     f"the FP32 peak on {len(honest)}: median "
                     f"{statistics.median(honest) if honest else float('nan'):.2f} |")
    for direction, wanted in wanted_by_direction.items():
        best = _best_of_the_modes(rows, direction)
        if best:
            lines.append(f"| VGG-16 N64 conv {direction}, each layer on the fastest of the engine and the Winograd "
                         f"modes (what choosing per layer could reach): median >= {wanted} | median "
                         f"{statistics.median(best):.2f}, lowest {min(best):.2f} over {len(best)} layers |")
    for r in rows:
        if r["group"] == "sgemm" and "ratio_to_peer" in r:
            lines.append(f"| SGEMM {r['shape']} >= 0.9 | {r['ratio_to_peer']:.2f} |")
        if r["group"] == "saliency" and r["shape"].startswith("vgg16") and "ratio_to_peer" in r:
            wanted = ">= 0.8 (within 1.25x)" if "N64" in r["shape"] else ">= 1.0 at batch 1"
            lines.append(f"| saliency {r['shape'].split(' (')[0]} {wanted} | {r['ratio_to_peer']:.2f} |")
    return "\n".join(lines) + "\n"


def _best_of_the_modes(rows, direction):
    """Per VGG-16 layer at batch 64, the best peer / ours ratio among the engine's row of
    `direction` and the Winograd modes' rows of it (the k-th row of each is the k-th layer),
    where every one of them has a row of each layer; else []."""
    def ratios(label):
        return [r["ratio_to_peer"] for r in rows if r["group"] == "conv" and r["shape"].startswith("vgg16 N64")
                and r["direction"] == label and "ratio_to_peer" in r]
    columns = [ratios(direction)] + [ratios(f"{direction} ({mode})") for mode in WINOGRAD_MODES]
    columns = [column for column in columns if column]
    if len(columns) < 2 or len({len(column) for column in columns}) != 1:
        return []
    return [max(layer) for layer in zip(*columns)]


def markdown(device, peak, rows, choices):
    lines = [f"# Our CUDA kernels against PyTorch (cuDNN / cuBLAS, TF32 off) on {device}", "",
             f"FP32 peak used for the fractions: {peak} TFLOP/s" if peak else "No FP32 peak known for this device.", "",
             "The engine's choices: " + ", ".join(f"`{name} = {value!r}`" for name, value in choices.items()), "",
             target_summary(rows, peak), "A peer marked * ran above the FP32 peak for the FLOPs counted (TF32, or a "
             "Winograd/FFT convolution doing fewer multiplications): its ratio is shown but it is not an FP32 "
             "direct-arithmetic peer.", "",
             "| group | shape | direction | GFLOP | ours ms | ours TFLOP/s | of peak | peer ms | peer TFLOP/s | peer / ours |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['shape']} | {r['direction']} | {r['gflop']:.2f} | {r['ours_ms']:.3f} | "
                     f"{r['ours_tflops']:.2f} | {r.get('fraction_of_peak', float('nan')):.2f} | "
                     f"{r.get('peer_ms', float('nan')):.3f} | {r.get('peer_tflops', float('nan')):.2f}"
                     f"{'*' if above_peak(r, peak) else ''} | "
                     f"{r.get('ratio_to_peer', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KernelError as error:  # no GPU or no CuPy (without --emulator): one line, not a traceback
        sys.exit(f"bench/gpu_kernels.py: {error}")
