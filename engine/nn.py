"""Layers that mirror torch.nn: names, constructor arguments and parameter layouts.

Every layer can describe itself as a spec (`layer.spec()`: its type and constructor
arguments), and `build(specs)` rebuilds a Sequential from specs: this is how a weight file
carries its architecture without pickle.

A layer that runs one op family of the kernels names it (`family`) and gives the family's
keyword arguments (`kernel_arguments()`): its forward passes them to the op, and its
DeconvNet step (`zeiler_step`) to the family's declared step.
"""
import math

import numpy as np

from . import functional as F
from .backend import NAMES, Backend, default, get_backend
from .tensor import Tensor
from .. import kernels

_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seeds parameter initialisation and dropout."""
    global _rng
    _rng = np.random.default_rng(seed)


def _uniform_parameter(shape, bound):
    values = (_rng.random(shape, dtype=np.float32) * 2 - 1) * np.float32(bound)
    return Tensor(values, requires_grad=True)


class Module:
    """A layer: parameters in `_parameters` (name -> Tensor, in state-dict order)."""

    training = True
    family = None  # the kernels' OpFamily this layer runs, where it runs one

    def __init__(self):
        self._parameters = {}

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def parameters(self):
        return list(self._parameters.values())

    def named_parameters(self):
        return list(self._parameters.items())

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, target):
        """Moves every parameter to a backend ("numpy", "cuda", "emulator", "auto" or a
        Backend), or casts it to a dtype (float64 for gradient checks). Returns the module."""
        if isinstance(target, Backend) or target in NAMES + ("auto",):
            backend = get_backend(target)
            for p in self.parameters():
                p.data, p.backend, p.grad = backend.asarray(p.data), backend, None
        else:
            for p in self.parameters():
                p.data = p.data.astype(target)
        return self

    @property
    def backend(self):
        """Where the parameters live (the default backend for a layer without any)."""
        parameters = self.parameters()
        return parameters[0].backend if parameters else default()

    def kernel_arguments(self):
        """The keyword arguments of this layer's op family (stride, padding, ...)."""
        return {}

    def forward_with_state(self, x):
        """(output, the forward state a DeconvNet step needs or None): a max-pool's switches."""
        return self(x), None

    def output_shape(self, shape):
        """The shape of this layer's output for an input of `shape`, or a ValueError saying
        why the layer cannot take it; computes nothing (weight files are checked with it)."""
        return tuple(shape)

    def zeiler_step(self, signal, layer_input, switches=None):
        """Zeiler and Fergus's DeconvNet step: the reconstruction of this layer's input
        (a Tensor, the forward pass's) from `signal` (an array at its output), computed by
        the op family's declared step, not by the autodiff backward. `switches`: those of
        the forward pass, for a max-pool."""
        family = self.family
        if family is None or family.zeiler is None:
            raise ValueError(f"no DeconvNet step for {self!r}")
        ops = getattr(layer_input.backend.ops, family.name)  # the family bound to the input's backend
        state = {} if switches is None else {"switches": switches}
        return family.zeiler(ops, signal, layer_input.data, *[p.data for p in self.parameters()],
                             **state, **self.kernel_arguments())

    def spec(self):
        return {"type": type(self).__name__, **self._arguments()}

    def _arguments(self):
        return {}

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        return f"{type(self).__name__}({arguments})"


def _expect_4d(layer, shape, channels=None):
    if len(shape) != 4:
        raise ValueError(f"{layer!r} expects a 4-D (N, C, H, W) input, got shape {tuple(shape)}")
    if channels is not None and shape[1] != channels:
        raise ValueError(f"{layer!r} expects {channels} input channels, got {shape[1]} "
                         f"(input shape {tuple(shape)})")


def _expect_dtype(layer, x):
    if x.dtype != layer.weight.dtype:
        raise TypeError(f"{layer!r}: input is {x.dtype} but the parameters are {layer.weight.dtype}; "
                        "cast the input, or the network with .to(dtype)")


def _expect_window_fits(layer, shape, kernel_size, padding):
    height, width = shape[2] + 2 * padding, shape[3] + 2 * padding
    if height < kernel_size or width < kernel_size:
        raise ValueError(f"{layer!r}: input {shape[2]}x{shape[3]} with padding {padding} is "
                         f"smaller than the {kernel_size}x{kernel_size} window")


def _single_size(name, value):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}={value!r}: only square windows and equal strides are supported")
        value = value[0]
    return int(value)


def _expect_positive(layer_name, **sizes):
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{layer_name}: {name} must be at least 1, got {value}")


class Conv2d(Module):
    family = kernels.CONV2D

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _single_size("kernel_size", kernel_size)
        self.stride = _single_size("stride", stride)
        self.padding = _single_size("padding", padding)
        _expect_positive("Conv2d", in_channels=self.in_channels, out_channels=self.out_channels,
                         kernel_size=self.kernel_size, stride=self.stride)
        if self.padding < 0:
            raise ValueError(f"Conv2d: padding must be at least 0, got {self.padding}")
        bound = 1 / math.sqrt(self.in_channels * self.kernel_size ** 2)  # PyTorch's default
        k = self.kernel_size
        self.weight = _uniform_parameter((self.out_channels, self.in_channels, k, k), bound)
        self.bias = _uniform_parameter((self.out_channels,), bound) if bias else None
        self._parameters = {"weight": self.weight}
        if bias:
            self._parameters["bias"] = self.bias

    def _arguments(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    bias=self.bias is not None)

    def kernel_arguments(self):
        return dict(stride=self.stride, padding=self.padding)

    def output_shape(self, shape):
        _expect_4d(self, shape, self.in_channels)
        _expect_window_fits(self, shape, self.kernel_size, self.padding)
        n, _, h, w = shape
        size = lambda s: kernels.conv2d_output_size(s, self.kernel_size, self.stride, self.padding)
        return (n, self.out_channels, size(h), size(w))

    def forward(self, x):
        self.output_shape(x.shape)
        _expect_dtype(self, x)
        return F.conv2d(x, self.weight, self.bias, **self.kernel_arguments())


class Linear(Module):
    family = kernels.LINEAR

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        _expect_positive("Linear", in_features=self.in_features, out_features=self.out_features)
        bound = 1 / math.sqrt(self.in_features)
        self.weight = _uniform_parameter((self.out_features, self.in_features), bound)
        self.bias = _uniform_parameter((self.out_features,), bound) if bias else None
        self._parameters = {"weight": self.weight}
        if bias:
            self._parameters["bias"] = self.bias

    def _arguments(self):
        return dict(in_features=self.in_features, out_features=self.out_features,
                    bias=self.bias is not None)

    def output_shape(self, shape):
        if len(shape) != 2 or shape[1] != self.in_features:
            raise ValueError(f"{self!r} expects a 2-D (N, {self.in_features}) input, got shape {tuple(shape)}")
        return (shape[0], self.out_features)

    def forward(self, x):
        self.output_shape(x.shape)
        _expect_dtype(self, x)
        return F.linear(x, self.weight, self.bias)


class ReLU(Module):
    family = kernels.RELU

    def forward(self, x):
        return F.relu(x)


class MaxPool2d(Module):
    family = kernels.MAXPOOL

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = _single_size("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _single_size("stride", stride)
        self.padding = _single_size("padding", padding)
        self.ceil_mode = bool(ceil_mode)
        _expect_positive("MaxPool2d", kernel_size=self.kernel_size, stride=self.stride)
        if not 0 <= 2 * self.padding <= self.kernel_size:
            raise ValueError(f"MaxPool2d padding {self.padding} must be between 0 and half the "
                             f"kernel size {self.kernel_size}")

    def _arguments(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode)

    def kernel_arguments(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode)

    def forward_with_state(self, x):
        return self.forward(x, return_switches=True)

    def output_shape(self, shape):
        _expect_4d(self, shape)
        _expect_window_fits(self, shape, self.kernel_size, self.padding)
        n, c, h, w = shape
        size = lambda s: kernels.maxpool_output_size(s, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        return (n, c, size(h), size(w))

    def forward(self, x, return_switches=False):
        self.output_shape(x.shape)
        return F.max_pool2d(x, **self.kernel_arguments(), return_switches=return_switches)


class AdaptiveAvgPool2d(Module):
    """Averages each plane down to output_size (an int or (height, width)), as PyTorch."""

    family = kernels.ADAPTIVE_AVGPOOL

    def __init__(self, output_size):
        super().__init__()
        size = (output_size, output_size) if np.isscalar(output_size) else tuple(output_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"AdaptiveAvgPool2d output_size must be positive, got {output_size!r}")
        self.output_size = (int(size[0]), int(size[1]))

    def _arguments(self):
        return dict(output_size=list(self.output_size))

    def kernel_arguments(self):
        return dict(output_size=self.output_size)

    def output_shape(self, shape):
        _expect_4d(self, shape)
        return tuple(shape[:2]) + self.output_size

    def forward(self, x):
        self.output_shape(x.shape)
        return F.adaptive_avg_pool2d(x, **self.kernel_arguments())


class Flatten(Module):
    """Flattens every dimension but the batch: (N, C, H, W) -> (N, C*H*W)."""

    def output_shape(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Flatten expects a batch of at least 2 dimensions, got shape {tuple(shape)}")
        return (shape[0], math.prod(shape[1:]))

    def forward(self, x):
        self.output_shape(x.shape)
        return F.reshape(x, (x.shape[0], -1))

    def zeiler_step(self, signal, layer_input, switches=None):
        return signal.reshape(layer_input.shape)


class Dropout(Module):
    """Inverted dropout in training mode, the identity in evaluation mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def _arguments(self):
        return dict(p=self.p)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return F.dropout(x, self.p, _rng)

    def zeiler_step(self, signal, layer_input, switches=None):
        return signal  # reconstructions are made in evaluation mode, where dropout is the identity


class LocalResponseNorm(Module):
    family = kernels.LRN

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def _arguments(self):
        return dict(size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def kernel_arguments(self):
        return dict(size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def output_shape(self, shape):
        _expect_4d(self, shape)
        return tuple(shape)

    def forward(self, x):
        self.output_shape(x.shape)
        return F.local_response_norm(x, **self.kernel_arguments())


LAYER_TYPES = {cls.__name__: cls for cls in
               (Conv2d, Linear, ReLU, MaxPool2d, AdaptiveAvgPool2d, Flatten, Dropout, LocalResponseNorm)}


class Sequential(Module):
    """Layers run in order. `net[k]` is layer k, `net[:k]` a Sequential of the first k
    layers (sharing them), so a forward can stop at, and a backward start from, any layer."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def output_shape(self, shape):
        for index, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as error:
                raise ValueError(f"layer {index}: {error}") from None
        return shape

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def named_parameters(self):
        return [(f"{i}.{name}", p) for i, layer in enumerate(self.layers)
                for name, p in layer.named_parameters()]

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def state_dict(self):
        """Parameter arrays under PyTorch-style keys ("0.weight", "3.bias", ...)."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copies arrays into the parameters; every key must be present and of the right shape."""
        expected = dict(self.named_parameters())
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise KeyError(f"state dict does not match the network: missing {missing}, unexpected {unexpected}")
        for name, p in expected.items():
            value = state[name]
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(f"tensor {name!r} has shape {tuple(value.shape)}, the network expects {tuple(p.shape)}")
        for name, p in expected.items():
            p.data = p.backend.asarray(state[name], dtype=p.dtype).copy()

    def spec(self):
        return [layer.spec() for layer in self.layers]

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


def build(specs):
    """Rebuilds a Sequential from `Sequential.spec()` output."""
    layers = []
    for position, spec in enumerate(specs):
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in LAYER_TYPES:
            raise ValueError(f"unknown layer type {kind!r} at position {position}: "
                             f"expected one of {', '.join(LAYER_TYPES)}")
        try:
            layers.append(LAYER_TYPES[kind](**spec))
        except TypeError as error:
            raise ValueError(f"bad arguments for {kind} at position {position}: {error}") from None
    return Sequential(*layers)
