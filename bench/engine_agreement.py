"""The engine's kernels, with a set of rung choices, against the NumPy path on whole
networks: the scores and the saliency map (the input gradient of one class) of VGG-16,
CNN-F and EfficientNet-Lite0 (random weights, batch 2), as the largest difference over the
largest value and the share of the map's pixels that moved by more than 1e-4 of it.

    python bench/engine_agreement.py                      # every rung that is not yet the engine's turned on, on the emulator
    python bench/engine_agreement.py --choices FILE       # the choices kernels.choices wrote (engine_choices.json)
    python bench/engine_agreement.py --backend cuda       # on a GPU

A rounding other than the direct sum's (Winograd's above all) can flip a max-pool switch or
a ReLU at a near-tie; the map then differs at the few pixels that gradient reaches while the
scores agree to float32's rounding: the share of moved pixels tells the two apart.
"""
import argparse
import sys

import numpy as np

from deepinside import engine
from deepinside.engine import Tensor
from deepinside.kernels import choices
from deepinside.kernels.launch import KernelError

# Every rung the engine does not take yet, turned on (Winograd from one channel, F(2x2, 3x3)
# fused up to 64 channels and F(4x4, 3x3) fused past them, its weight gradient unfused,
# F(2x2, 5x5) from one channel); of two, the newer (the SGEMM's and implicit GEMM's 8x16 and
# the weight gradient's two_blocks ran here up to the fourteenth session, the SGEMM's async
# up to the sixteenth: bench/README.md).
EVERY_RUNG = {"gemm.ENGINE_TILED": "8x16_async",
              "conv2d.ENGINE_IMPLICIT": {"forward": "async", "backward_data": "async", "backward_weights": "async"},
              "conv2d.ENGINE_WINOGRAD_TILE": 4,
              "conv2d.ENGINE_WINOGRAD_CHANNELS": {"forward": 1, "backward_data": 1, "backward_weights": 1},
              "conv2d.ENGINE_WINOGRAD_TILE_FUSED": {"forward": True, "backward_data": True},
              "conv2d.ENGINE_WINOGRAD_FUSED": {"forward": 64, "backward_data": 64},
              "conv2d.ENGINE_WINOGRAD_5X5_CHANNELS": {"forward": 1, "backward_data": 1, "backward_weights": 1},
              "conv2d.ENGINE_FEW_CHANNELS_FORWARD": "few_channels",
              "conv2d.ENGINE_FEW_CHANNELS_BACKWARD_DATA": "few_channels_async",
              "maxpool.ENGINE_VERSION": "v4",
              "batchnorm.ENGINE_VERSION": "v3",
              "pad.ENGINE_VERSION": "v2",
              "avgpool.ENGINE_VERSION": "v2",
              "lrn.ENGINE_VERSION": "v3",
              "depthwise.ENGINE_FORWARD": "depthwise_forward_planes",
              "depthwise.ENGINE_UNIT_STRIDE_BACKWARD_DATA": "depthwise_backward_data_planes",
              "depthwise.ENGINE_STRIDED_BACKWARD_DATA": "depthwise_backward_data_quads",
              "depthwise.ENGINE_BACKWARD_WEIGHTS": "depthwise_backward_weights_rows"}


def networks():
    """(name, network, input side) of the three networks, at sides the emulator runs in seconds."""
    from deepinside.models.architectures import cnn_f, vgg16
    from deepinside.models.efficientnet import efficientnet_lite
    return [("vgg16", vgg16(), 64), ("cnn_f", cnn_f(), 224), ("efficientnet_lite0", efficientnet_lite(0), 96)]


def agreement(net, side, backend, seed=0):
    """(scores' largest difference, the map's, the share of the map's pixels moved by more
    than 1e-4) of `net` on `backend` against the NumPy path, both over the largest value."""
    x = np.random.default_rng(seed).standard_normal((2, 3, side, side)).astype(np.float32)
    results = []
    for name in ("numpy", backend):
        net.eval().to(name)
        image = Tensor(x, requires_grad=True, backend=name)
        scores = net(image)
        chosen = np.zeros(scores.shape, np.float32)
        chosen[:, 3] = 1.0
        (gradient,) = engine.grad(scores, [image], grad_output=chosen)
        results.append((scores.numpy(), engine.to_numpy(gradient)))
    (scores, saliency), (their_scores, their_saliency) = results
    moved = np.abs(their_saliency - saliency) / np.abs(saliency).max()
    return (float(np.abs(their_scores - scores).max() / np.abs(scores).max()), float(moved.max()),
            float((moved > 1e-4).mean()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--choices", help="a file of rung choices (default: every rung turned on)")
    parser.add_argument("--backend", default="emulator", choices=("emulator", "cuda"))
    arguments = parser.parse_args(argv)
    before = choices.current()
    try:
        choices.apply(choices.load(arguments.choices) if arguments.choices else EVERY_RUNG)
        print("| network | scores | saliency map | pixels moved |\n| --- | ---: | ---: | ---: |")
        for name, net, side in networks():
            scores, saliency, moved = agreement(net, side, arguments.backend)
            print(f"| {name} | {scores:.1e} | {saliency:.1e} | {moved:.2%} |")
    except KernelError as error:
        print(f"bench/engine_agreement.py: {error}", file=sys.stderr)
        return 1
    finally:
        choices.apply(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
