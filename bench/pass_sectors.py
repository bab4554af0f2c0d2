"""Global-memory sectors of a whole saliency pass (forward, then the input gradient of one
class) on the engine's kernels, counted on the CPU by the traced emulator of
kernels.sectors: per kernel, the sectors its requests touched (the first block of every
launch) against the fewest their bytes need, the kernels with the most sectors to spare
first. Where kernels.sectors runs each ladder on a few shapes, this finds what a network's
own shapes bring out (planes of 49 or 169 positions, 1x1 convolutions at batch 1, ...).

    python bench/pass_sectors.py cnn_f            # also vgg16 (at 64 x 64), efficientnet_lite0, shapes (the shipped model's)
    python bench/pass_sectors.py cnn_f --lines    # and each kernel's lines above the fewest
"""
import argparse

import numpy as np

NETWORKS = {"vgg16": 64, "cnn_f": 224, "efficientnet_lite0": 224, "shapes": 96}  # input sides the emulator runs in seconds


def network(name):
    from deepinside.models.architectures import cnn_f, shapes_net, vgg16
    from deepinside.models.efficientnet import efficientnet_lite
    return {"vgg16": vgg16, "cnn_f": cnn_f, "efficientnet_lite0": lambda: efficientnet_lite(0),
            "shapes": shapes_net}[name]()


def pass_sectors(name, batch=1):
    """{kernel: {(file, line, store): MemoryCost}} of the global accesses of one saliency
    pass of network `name` on the engine's kernels, traced (the kernel files' lines only)."""
    from deepinside import engine, kernels
    from deepinside.engine import Tensor
    from deepinside.engine.backend import Backend
    from deepinside.kernels.banks import MemoryTracer, source_line

    tracer = MemoryTracer(blocks=1)
    backend = Backend("traced", np, kernels.bind(kernels.Device(tracer)))
    net = network(name).eval().to(backend)
    side = NETWORKS[name]
    image = Tensor(np.random.default_rng(0).standard_normal((batch, 3, side, side)).astype(np.float32),
                   requires_grad=True, backend=backend)
    scores = net(image)
    chosen = np.zeros(scores.shape, np.float32)
    chosen[:, 0] = 1.0
    engine.grad(scores, [image], grad_output=chosen)
    return {kernel: {key: cost for key, cost in costs.items() if source_line(*key[:2])}
            for kernel, costs in tracer.costs["global"].items()}


def main(argv=None):
    from deepinside.kernels.banks import source_line

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", choices=sorted(NETWORKS))
    parser.add_argument("--lines", action="store_true", help="each kernel's lines above the fewest sectors too")
    arguments = parser.parse_args(argv)
    kernels = pass_sectors(arguments.network)
    totals = sorted(((sum(c.transactions for c in costs.values()), sum(c.ideal for c in costs.values()), kernel)
                     for kernel, costs in kernels.items()), key=lambda row: row[1] - row[0])
    print(f"{arguments.network}, batch 1: global-memory sectors of a saliency pass's first blocks\n")
    print("| kernel | sectors | fewest | ratio |\n| --- | ---: | ---: | ---: |")
    for sectors, fewest, kernel in totals:
        print(f"| {kernel} | {sectors} | {fewest} | {sectors / max(fewest, 1):.2f} |")
        if arguments.lines:
            for (name, line, store), cost in sorted(kernels[kernel].items()):
                if cost.transactions > cost.ideal:
                    print(f"|   {name}:{line} {'store' if store else 'load'} {source_line(name, line)[:60]} | "
                          f"{cost.transactions} | {cost.ideal} | {cost.excess:.2f} |")


if __name__ == "__main__":
    main()
