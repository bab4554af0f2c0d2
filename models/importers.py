"""Importers for networks people already have: torchvision state dicts (.pth or
.safetensors), ONNX graphs, and MatConvNet SimpleNN .mat files (the layout of the paper's
own CNN-F, imagenet-vgg-f.mat). Each returns a models.Model; none runs code from the file.
"""
import os
import re

import numpy as np

from ..engine import Tensor, nn
from ..engine.errors import limit, regular_file
from .architectures import alexnet, vgg16
from .weights import DEFAULT_MAX_INPUT_SIZE, Model, ModelFileError, check_tensors

# torchvision's preprocessing: RGB in [0, 1], then per-channel mean and std; in pixel units.
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def _fill(net, tensors, path):
    """Copies {our key: array} into net after checking names, shapes and finiteness."""
    check_tensors(path, net, tensors)
    net.load_state_dict({k: np.asarray(v, np.float32) for k, v in tensors.items()})
    return net.eval()


# torchvision ---------------------------------------------------------------------------

def _torchvision_arch(state, path):
    shape = tuple(state["features.0.weight"].shape) if "features.0.weight" in state else None
    if shape == (64, 3, 11, 11):
        return "alexnet"
    if shape == (64, 3, 3, 3) and sum(k.startswith("features.") and k.endswith(".weight") for k in state) == 13:
        return "vgg16"
    raise ModelFileError(f"{path}: tensor names and shapes match neither torchvision's AlexNet nor VGG-16 "
                         "(say which with --arch alexnet or --arch vgg16; arch= in Python)")


def from_torchvision(state, path, arch=None):
    """A torchvision AlexNet or VGG-16 state dict ({'features.0.weight': array, ...})."""
    arch = arch or _torchvision_arch(state, path)
    builders = {"alexnet": alexnet, "vgg16": vgg16}
    if arch not in builders:
        raise ModelFileError(f"{path}: unknown torchvision architecture {arch!r}: expected alexnet or vgg16")
    last = max((k for k in state if k.startswith("classifier.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]), default=None)
    if last is None:
        raise ModelFileError(f"{path}: no classifier weights (not a torchvision {arch} state dict)")
    net = builders[arch](num_classes=int(state[last].shape[0]))
    first_classifier = next(i for i, layer in enumerate(net) if isinstance(layer, nn.Flatten)) + 1
    tensors = {}
    for key, value in state.items():
        match = re.fullmatch(r"(features|classifier)\.(\d+)\.(weight|bias)", key)
        if not match:
            raise ModelFileError(f"{path}: tensor {key!r} is not part of torchvision's {arch}")
        index = int(match.group(2)) + (first_classifier if match.group(1) == "classifier" else 0)
        tensors[f"{index}.{match.group(3)}"] = value
    net = _fill(net, tensors, path)
    return Model(net=net, classes=[f"class {i}" for i in range(net[-1].out_features)], input_size=224,
                 image_size=256, mean=TORCHVISION_MEAN.copy(), std=TORCHVISION_STD.copy())


# ONNX ----------------------------------------------------------------------------------

ONNX_OPS = {"Conv", "Relu", "MaxPool", "LRN", "Gemm", "MatMul", "Add", "Flatten", "Reshape", "Dropout",
            "Softmax", "GlobalAveragePool", "Constant", "Identity"}


def from_onnx(path):
    """A chain of supported ONNX operators, as a Sequential."""
    import onnx
    from onnx import numpy_helper

    from google.protobuf.message import Error as ProtobufError

    try:
        graph = onnx.load(path).graph
    except (OSError, ValueError, ProtobufError) as error:
        raise ModelFileError(f"{path}: not a readable ONNX model ({error})") from None
    unsupported = sorted({node.op_type for node in graph.node} - ONNX_OPS)
    if unsupported:
        raise ModelFileError(f"{path}: unsupported ONNX operators: {', '.join(unsupported)} "
                             f"(supported: {', '.join(sorted(ONNX_OPS))})")
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise ModelFileError(f"{path}: expected one image input, found {len(inputs)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    input_size = dims[2] if len(dims) == 4 and dims[2] > 0 else 224

    layers, current = [], inputs[0].name
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            if "value" not in attributes or len(node.output) != 1:
                raise ModelFileError(f"{path}: Constant {node.name} holds no tensor (only tensor constants are read)")
            constants[node.output[0]] = numpy_helper.to_array(attributes["value"])
            continue
        data = [name for name in node.input if name and name not in constants]
        if data != [current]:
            raise ModelFileError(f"{path}: node {node.name or node.op_type} does not continue a single chain "
                                 "of layers (branches are not supported)")
        try:
            layer = _onnx_layer(node, attributes, constants, layers, path)
        except (ValueError, TypeError) as error:  # an attribute of the wrong kind or range
            if isinstance(error, ModelFileError):
                raise
            raise ModelFileError(f"{path}: {node.op_type} {node.name or '(unnamed)'}: {error}") from None
        if layer is not None:
            layers.append(layer)
        current = node.output[0]
    if not layers:
        raise ModelFileError(f"{path}: the graph has no layers")
    net = nn.Sequential(*layers).eval()
    classes = net[-1].out_features if isinstance(net[-1], nn.Linear) else 0
    return Model(net=net, classes=[f"class {i}" for i in range(classes)], input_size=input_size,
                 image_size=round(input_size * 256 / 224), mean=TORCHVISION_MEAN.copy(), std=TORCHVISION_STD.copy())


def _symmetric(pads, node, path):
    pads = list(pads or [0, 0, 0, 0])
    if len(set(pads)) != 1:
        raise ModelFileError(f"{path}: {node.op_type} {node.name} has asymmetric pads {pads}")
    return pads[0]


def _square(values, name, node, path):
    values = _whole_numbers(values, name)
    if len(set(values)) != 1:
        raise ModelFileError(f"{path}: {node.op_type} {node.name} has non-square {name} {values}")
    return values[0]


def _weight(node, index, ndim, constants, path):
    """The constant input `index` of `node` with `ndim` dimensions, or a ModelFileError."""
    if len(node.input) <= index or node.input[index] not in constants:
        raise ModelFileError(f"{path}: {node.op_type} {node.name} has no constant weight input {index}")
    value = np.asarray(constants[node.input[index]])
    if value.ndim != ndim or value.size == 0:
        raise ModelFileError(f"{path}: {node.op_type} {node.name}: input {index} has shape {value.shape}, "
                             f"expected {ndim} dimensions")
    return value


def _attribute(attributes, name, node, path):
    if name not in attributes:
        raise ModelFileError(f"{path}: {node.op_type} {node.name} has no {name} attribute")
    return attributes[name]


def _set(layer, name, value):
    parameter = getattr(layer, name)
    value = np.ascontiguousarray(value, np.float32)
    if value.shape != parameter.shape:
        raise ValueError(f"its {name} has shape {value.shape}, the layer expects {parameter.shape}")
    parameter.data = value


def _onnx_layer(node, attributes, constants, layers, path):
    op = node.op_type
    if op == "Conv":
        weight = _weight(node, 1, 4, constants, path)
        if attributes.get("group", 1) != 1 or set(attributes.get("dilations", [1, 1])) != {1}:
            raise ModelFileError(f"{path}: Conv {node.name} uses groups or dilation, which the engine lacks")
        bias = constants.get(node.input[2]) if len(node.input) > 2 else None
        layer = nn.Conv2d(weight.shape[1], weight.shape[0], _square(weight.shape[2:], "kernel", node, path),
                          _square(attributes.get("strides", [1, 1]), "strides", node, path),
                          _symmetric(attributes.get("pads"), node, path), bias=bias is not None)
        _set(layer, "weight", weight)
        if bias is not None:
            _set(layer, "bias", bias)
        return layer
    if op == "Relu":
        return nn.ReLU()
    if op == "MaxPool":
        kernel = _square(_attribute(attributes, "kernel_shape", node, path), "kernel", node, path)
        return nn.MaxPool2d(kernel, _square(attributes.get("strides", [1, 1]), "strides", node, path),
                            _symmetric(attributes.get("pads"), node, path), bool(attributes.get("ceil_mode", 0)))
    if op == "LRN":
        size = _attribute(attributes, "size", node, path)
        if size % 2 == 0:
            raise ModelFileError(f"{path}: LRN {node.name} has an even size {size}, whose window ONNX "
                                 "and PyTorch place differently")
        return nn.LocalResponseNorm(size, attributes.get("alpha", 1e-4), attributes.get("beta", 0.75),
                                    attributes.get("bias", 1.0))
    if op in ("Gemm", "MatMul"):
        weight = _weight(node, 1, 2, constants, path)
        if op == "Gemm":
            if attributes.get("transA", 0):
                raise ModelFileError(f"{path}: Gemm {node.name} transposes its input")
            weight = weight if attributes.get("transB", 0) else weight.T
            weight = weight * attributes.get("alpha", 1.0)
        else:
            weight = weight.T
        bias = constants.get(node.input[2]) if op == "Gemm" and len(node.input) > 2 else None
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        _set(layer, "weight", weight)
        if bias is not None:
            _set(layer, "bias", np.broadcast_to(bias * attributes.get("beta", 1.0), (weight.shape[0],)))
        return layer
    if op == "Add":
        previous = layers[-1] if layers else None
        other = [constants[name] for name in node.input if name in constants]
        if not (isinstance(previous, nn.Linear) and previous.bias is None and len(other) == 1):
            raise ModelFileError(f"{path}: Add {node.name} is not the bias of a MatMul")
        previous.bias = Tensor(np.broadcast_to(other[0], (previous.out_features,)).astype(np.float32), requires_grad=True)
        previous._parameters["bias"] = previous.bias
        return None
    if op in ("Flatten", "Reshape"):
        if op == "Flatten" and attributes.get("axis", 1) != 1:
            raise ModelFileError(f"{path}: Flatten {node.name} with axis {attributes['axis']}")
        if op == "Reshape":
            shape = list(constants[node.input[1]])
            if len(shape) != 2 or shape[1] not in (-1,) and shape[0] not in (-1, 0, 1):
                raise ModelFileError(f"{path}: Reshape {node.name} to {shape} is not a flatten")
        return nn.Flatten()
    if op == "Dropout":
        return nn.Dropout(float(attributes.get("ratio", 0.5)))
    if op == "GlobalAveragePool":
        return nn.AdaptiveAvgPool2d(1)
    return None  # Softmax (the methods use unnormalised scores) and Identity


# MatConvNet ----------------------------------------------------------------------------

def _field(struct, *names, default=None):
    for name in names:
        if hasattr(struct, name):
            return getattr(struct, name)
    return default


def _whole_numbers(value, what):
    """The whole numbers of an attribute, or a ValueError in words."""
    values = np.atleast_1d(np.asarray(value)).ravel()
    if (values.size == 0 or values.dtype.kind not in "iuf" or not np.isfinite(values).all()
            or (values != np.round(values)).any() or (np.abs(values) > 2 ** 31).any()):
        raise ValueError(f"its {what} must be whole numbers, got {value!r:.40}")
    return [int(v) for v in values]


def _pair(value, what):
    values = _whole_numbers(value, what)
    return (values[0], values[-1])


def _four(value, what):
    values = _whole_numbers(value, what)
    return tuple(values if len(values) == 4 else values[:1] * 4)


def from_matconvnet(path):
    """A SimpleNN network: conv (HxWxCinxCout filters, [top bottom left right] padding),
    relu, pool (max, with its own padding), normalize/lrn ([N kappa alpha beta]), dropout,
    softmax (dropped); meta.normalization (average image, image size) and meta.classes."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(path, squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, MatReadError) as error:
        raise ModelFileError(f"{path}: not a readable MATLAB file ({error})") from None
    if "layers" not in data:
        raise ModelFileError(f"{path}: no 'layers' variable: not a MatConvNet SimpleNN file")
    meta = data.get("meta")
    normalization = _field(meta, "normalization") if meta is not None else data.get("normalization")
    classes_struct = _field(meta, "classes") if meta is not None else data.get("classes")
    image_size = np.atleast_1d(_field(normalization, "imageSize", default=[224]))
    largest = limit("MAX_INPUT_SIZE", DEFAULT_MAX_INPUT_SIZE)
    if image_size.dtype.kind not in "iuf" or not (np.isfinite(image_size[0]) and 1 <= image_size[0] <= largest):
        raise ModelFileError(f"{path}: the image size {image_size[0]!r} is not a number from 1 to {largest}")
    size = int(image_size[0])
    layers_in = np.atleast_1d(data["layers"])

    layers, map_size, flat, channels = [], size, False, 3
    for position, entry in enumerate(layers_in):
        name = str(_field(entry, "name", default=position))
        try:
            kind = str(_field(entry, "type", default=""))
            if kind == "conv":
                weights = _field(entry, "weights")
                if weights is not None:
                    if not (isinstance(weights, np.ndarray) and weights.dtype == object and weights.size == 2):
                        raise ModelFileError(f"{path}: conv layer {name}: its weights must be a pair {{filters, biases}}")
                    filters, biases = weights[0], weights[1]
                elif hasattr(entry, "filters") and hasattr(entry, "biases"):
                    filters, biases = entry.filters, entry.biases
                else:
                    raise ModelFileError(f"{path}: conv layer {name} has no weights (filters and biases)")
                # squeeze_me drops singleton dimensions (a 1x1 kernel, one input channel): put
                # them back from the channels flowing in and the number of biases.
                filters, biases = np.asarray(filters, np.float32), np.asarray(biases, np.float32).ravel()
                cin, cout = channels, biases.size
                if cout == 0 or filters.size == 0:
                    raise ModelFileError(f"{path}: conv layer {name} has no filters or no biases")
                kh = kw = int(round(np.sqrt(filters.size / (cin * cout))))
                if kh * kw * cin * cout != filters.size:
                    raise ModelFileError(f"{path}: conv layer {name} has {filters.size} filter values, not a square "
                                         f"kernel for {cin} input and {cout} output channels")
                filters = filters.reshape(kh, kw, cin, cout, order="F") if filters.ndim < 4 else filters
                stride, pad = _pair(_field(entry, "stride", default=1), "stride"), _four(_field(entry, "pad", default=0), "pad")
                if kh == kw == map_size and set(pad) == {0}:  # a fully connected layer
                    if not flat:
                        layers.append(nn.Flatten())
                        flat = True
                    linear = nn.Linear(cin * kh * kw, cout)
                    _set(linear, "weight", filters.transpose(3, 2, 0, 1).reshape(cout, -1))
                    _set(linear, "bias", biases)
                    layers.append(linear)
                    map_size, channels = 1, cout
                    continue
                if kh != kw or stride[0] != stride[1] or len(set(pad)) != 1:
                    raise ModelFileError(f"{path}: conv layer {name} has non-square kernel, stride or padding "
                                         f"({kh}x{kw}, {stride}, {pad})")
                conv = nn.Conv2d(cin, cout, kh, stride[0], pad[0])
                _set(conv, "weight", filters.transpose(3, 2, 0, 1))
                _set(conv, "bias", biases)
                layers.append(conv)
                map_size, channels = (map_size + 2 * pad[0] - kh) // stride[0] + 1, cout
            elif kind == "relu":
                layers.append(nn.ReLU())
            elif kind == "pool":
                if str(_field(entry, "method", default="max")) != "max":
                    raise ModelFileError(f"{path}: pool layer {name} is not max-pooling")
                kernel, stride = _pair(_field(entry, "pool"), "pool size"), _pair(_field(entry, "stride", default=1), "stride")
                top, bottom, left, right = _four(_field(entry, "pad", default=0), "pad")
                if kernel[0] != kernel[1] or stride[0] != stride[1] or (top, bottom) != (left, right):
                    raise ModelFileError(f"{path}: pool layer {name} is not square")
                layers.append(_matconvnet_pool(kernel[0], stride[0], top, bottom, map_size, name, path))
                map_size = (map_size + top + bottom - kernel[0]) // stride[0] + 1
            elif kind in ("normalize", "lrn"):
                param = np.asarray(_field(entry, "param"), float).ravel()
                if param.size != 4 or not np.isfinite(param).all():
                    raise ModelFileError(f"{path}: normalisation layer {name} needs 4 finite parameters "
                                         f"[depth kappa alpha beta], has {param.size}")
                depth, kappa, alpha, beta = param
                if int(depth) % 2 == 0:
                    raise ModelFileError(f"{path}: normalisation layer {name} has an even depth {int(depth)}")
                layers.append(nn.LocalResponseNorm(int(depth), alpha=alpha * depth, beta=beta, k=kappa))
            elif kind == "dropout":
                layers.append(nn.Dropout(float(_field(entry, "rate", default=0.5))))
            elif kind in ("softmax", "softmaxloss"):
                continue
            else:
                raise ModelFileError(f"{path}: layer {name} has type {kind!r}, which the importer does not know")
        except (ValueError, TypeError, IndexError, AttributeError, OverflowError) as error:
            if isinstance(error, ModelFileError):
                raise
            detail = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            raise ModelFileError(f"{path}: layer {name} is malformed: {detail}") from None
    if not layers:
        raise ModelFileError(f"{path}: the network has no layers")
    net = nn.Sequential(*layers).eval()

    average = np.asarray(_field(normalization, "averageImage", default=np.zeros(3)), np.float32)
    if average.ndim == 3 and average.shape[:2] == (size, size):
        mean = average.transpose(2, 0, 1)
    else:
        mean = average.reshape(-1, 3).mean(axis=0) if average.size >= 3 else np.zeros(3, np.float32)
    outputs = net[-1].out_features if isinstance(net[-1], nn.Linear) else 0
    descriptions = _field(classes_struct, "description") if classes_struct is not None else None
    names = [str(d) for d in np.atleast_1d(descriptions)] if descriptions is not None else \
        [f"class {i}" for i in range(outputs)]
    synsets = _field(classes_struct, "name") if classes_struct is not None else None
    return Model(net=net, classes=names, input_size=size, image_size=size, mean=mean,
                 synsets=[str(s) for s in np.atleast_1d(synsets)] if synsets is not None else None)


def _matconvnet_pool(kernel, stride, before, after, map_size, name, path):
    """MatConvNet pads pools on each side independently. Symmetric padding is PyTorch's;
    padding only bottom/right is PyTorch's ceil_mode where both give the same size here."""
    if before == after:
        return nn.MaxPool2d(kernel, stride, before)
    from ..kernels import maxpool_output_size
    wanted = (map_size + before + after - kernel) // stride + 1
    if before == 0 and maxpool_output_size(map_size, kernel, stride, 0, True) == wanted:
        return nn.MaxPool2d(kernel, stride, 0, ceil_mode=True)
    raise ModelFileError(f"{path}: pool layer {name} pads {before} before and {after} after, which "
                         "the engine cannot express at this input size")


def read_class_names(path, count):
    """One class name per line; the count must match the network's outputs."""
    path = regular_file(path, "class-name file", ModelFileError)
    try:
        with open(path, encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip()]
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read class names ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: the class names are not UTF-8 text") from None
    if len(names) != count:
        raise ModelFileError(f"{path}: {len(names)} class names for a network with {count} outputs")
    return names
