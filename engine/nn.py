"""Layers that mirror torch.nn: names, constructor arguments and parameter layouts.

Every layer can describe itself as a spec (`layer.spec()`: its type and constructor
arguments), and `build(specs)` rebuilds a Sequential from specs: this is how a weight file
carries its architecture without pickle.

A layer that runs one op family of the kernels names it (`family`) and gives the family's
keyword arguments (`kernel_arguments()`): its forward passes them to the op, and its
DeconvNet step (`zeiler_step`) to the family's declared step.
"""
import contextlib
import contextvars
import math

import numpy as np

from . import functional as F
from .backend import NAMES, Backend, default, get_backend
from .tensor import Tensor
from .. import kernels
from ..kernels.conv2d import convolution_ops

_rng = np.random.default_rng(0)
_fusing = contextvars.ContextVar("fusing", default=True)  # per thread, as the default backend


@contextlib.contextmanager
def layer_by_layer():
    """Inside, a Sequential runs every layer as its own op: no ZeroPad2d or BatchNorm2d
    runs fused into a convolution (Sequential.forward), so the arithmetic is exactly that
    of the layers one by one, as their DeconvNet steps do it (the Sect. 4 comparison)."""
    token = _fusing.set(False)
    try:
        yield
    finally:
        _fusing.reset(token)


def manual_seed(seed):
    """Seeds parameter initialisation and dropout."""
    global _rng
    _rng = np.random.default_rng(seed)


def _uniform_parameter(shape, bound):
    values = (_rng.random(shape, dtype=np.float32) * 2 - 1) * np.float32(bound)
    return Tensor(values, requires_grad=True)


class Module:
    """A layer: parameters in `_parameters` (name -> Tensor, in state-dict order) and
    buffers in `_buffers` (tensors the state dict holds but no optimiser changes: a
    BatchNorm's running statistics)."""

    training = True
    family = None  # the kernels' OpFamily this layer runs, where it runs one

    def __init__(self):
        self._parameters = {}
        self._buffers = {}

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def parameters(self):
        return list(self._parameters.values())

    def named_parameters(self):
        return list(self._parameters.items())

    def named_buffers(self):
        return list(self._buffers.items())

    def named_state(self):
        """Parameters and buffers: what a state dict and a weight file hold."""
        return self.named_parameters() + self.named_buffers()

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, target):
        """Moves every parameter to a backend ("numpy", "cuda", "emulator", "auto" or a
        Backend), or casts it to a dtype (float64 for gradient checks). Returns the module."""
        tensors = [t for _, t in self.named_state()]
        if isinstance(target, Backend) or target in NAMES + ("auto",):
            backend = get_backend(target)
            for p in tensors:
                p.data, p.backend, p.grad = backend.asarray(p.data), backend, None
        else:
            for p in tensors:
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

    def kernel_ops(self, backend):
        """This layer's op family bound to `backend`."""
        return getattr(backend.ops, self.family.name)

    def forward_with_state(self, x):
        """(output, the forward state a DeconvNet step needs or None): a max-pool's switches,
        a container's records of its layers."""
        return self(x), None

    def spec_entry(self):
        """This layer in an architecture list (a container nests its layers' entries)."""
        return self.spec()

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
        ops = self.kernel_ops(layer_input.backend)  # the family bound to the input's backend
        state = {} if switches is None else {"switches": switches}  # a max-pool's
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
    """A convolution; with groups > 1 a grouped one (each group of in_channels / groups
    inputs feeds out_channels / groups outputs), depthwise when groups = in = out channels
    (the depthwise family's kernels, one K x K filter per channel)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, groups=1):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _single_size("kernel_size", kernel_size)
        self.stride = _single_size("stride", stride)
        self.padding = _single_size("padding", padding)
        self.groups = int(groups)
        _expect_positive("Conv2d", in_channels=self.in_channels, out_channels=self.out_channels,
                         kernel_size=self.kernel_size, stride=self.stride)
        if self.padding < 0:
            raise ValueError(f"Conv2d: padding must be at least 0, got {self.padding}")
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: groups={self.groups} must divide both {self.in_channels} input and "
                             f"{self.out_channels} output channels")
        depthwise = self.groups == self.in_channels == self.out_channels != 1
        self.family = kernels.DEPTHWISE if depthwise else kernels.CONV2D
        fan_in = self.in_channels // self.groups * self.kernel_size ** 2
        bound = 1 / math.sqrt(fan_in)  # PyTorch's default
        k = self.kernel_size
        self.weight = _uniform_parameter((self.out_channels, self.in_channels // self.groups, k, k), bound)
        self.bias = _uniform_parameter((self.out_channels,), bound) if bias else None
        self._parameters = {"weight": self.weight}
        if bias:
            self._parameters["bias"] = self.bias

    def _arguments(self):
        arguments = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                         kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                         bias=self.bias is not None)
        if self.groups != 1:
            arguments["groups"] = self.groups
        return arguments

    def kernel_arguments(self):
        return dict(stride=self.stride, padding=self.padding)

    def kernel_ops(self, backend):
        return convolution_ops(backend.ops, backend.xp, self.groups, self.in_channels, self.out_channels)

    def output_shape(self, shape):
        _expect_4d(self, shape, self.in_channels)
        _expect_window_fits(self, shape, self.kernel_size, self.padding)
        n, _, h, w = shape
        size = lambda s: kernels.conv2d_output_size(s, self.kernel_size, self.stride, self.padding)
        return (n, self.out_channels, size(h), size(w))

    def forward(self, x):
        self.output_shape(x.shape)
        _expect_dtype(self, x)
        return F.conv2d(x, self.weight, self.bias, groups=self.groups, **self.kernel_arguments())

    def takes_padding_of(self, pad):
        """Whether `pad`, the layer before this one, runs as part of it: a ZeroPad2d the
        same on both axes before a depthwise convolution without padding of its own (the
        depthwise kernels take (before, after) padding; this saves a copy of the input)."""
        if not (isinstance(pad, ZeroPad2d) and self.family is kernels.DEPTHWISE and self.padding == 0):
            return False
        left, right, top, bottom = pad.padding
        return (left, right) == (top, bottom)

    def folds(self, norm, shape):
        """Whether `norm`, the layer after this one, runs folded into it on an input of
        `shape`: an evaluation-mode BatchNorm2d, where scaling the weights touches fewer
        numbers than normalising the output would (the early, large maps of a network)."""
        if not (isinstance(norm, BatchNorm2d) and not norm.training and norm.num_features == self.out_channels):
            return False
        return self.weight.data.size <= math.prod(self.output_shape(shape))

    def forward_fused(self, x, pad=None, norm=None):
        """This convolution with the ZeroPad2d before it (see `takes_padding_of`) and the
        BatchNorm2d after it (see `folds`), either or both, as one op: the same values to
        rounding and the same gradients for every parameter and input."""
        padding = self.padding
        if pad is not None:
            self.output_shape(pad.output_shape(x.shape))
            padding = pad.padding[2:]  # (top, bottom), the same as (left, right)
        else:
            self.output_shape(x.shape)
        _expect_dtype(self, x)
        if norm is None:
            return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.groups)
        return F.conv2d_batchnorm(x, self.weight, self.bias, norm.weight, norm.bias, norm.running_mean,
                                  norm.running_var, norm.eps, self.stride, padding, self.groups)


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


class ReLU6(Module):
    """min(max(x, 0), 6); its backward rules are ReLU's with the mask open where 0 < x < 6."""

    family = kernels.RELU6

    def forward(self, x):
        return F.relu6(x)


class ZeroPad2d(Module):
    """Zeros around the spatial axes, padding = an int or (left, right, top, bottom), as
    PyTorch's; before an unpadded convolution it gives TensorFlow's asymmetric "SAME"."""

    family = kernels.PAD

    def __init__(self, padding):
        super().__init__()
        sides = [padding] * 4 if np.isscalar(padding) else list(padding)
        if len(sides) != 4 or min(int(s) for s in sides) < 0:
            raise ValueError(f"ZeroPad2d padding must be one or four sizes of at least 0, got {padding!r}")
        self.padding = tuple(int(s) for s in sides)

    def _arguments(self):
        return dict(padding=list(self.padding))

    def kernel_arguments(self):
        return dict(padding=self.padding)

    def output_shape(self, shape):
        _expect_4d(self, shape)
        left, right, top, bottom = self.padding
        return (shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right)

    def forward(self, x):
        self.output_shape(x.shape)
        return F.pad(x, self.padding)


class BatchNorm2d(Module):
    """PyTorch's BatchNorm2d: batch statistics in training (the running ones updated with
    `momentum`), the running ones in evaluation; parameters weight (gamma) and bias (beta),
    buffers running_mean and running_var. `fold_batchnorm` merges it into a convolution."""

    family = kernels.BATCHNORM

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        _expect_positive("BatchNorm2d", num_features=self.num_features)
        if not (self.eps > 0 and 0 <= self.momentum <= 1):
            raise ValueError(f"BatchNorm2d: eps must be positive and momentum in [0, 1], got {eps}, {momentum}")
        ones, zeros = np.ones(self.num_features, np.float32), np.zeros(self.num_features, np.float32)
        self.weight, self.bias = Tensor(ones, requires_grad=True), Tensor(zeros, requires_grad=True)
        self.running_mean, self.running_var = Tensor(zeros.copy()), Tensor(ones.copy())
        self._parameters = {"weight": self.weight, "bias": self.bias}
        self._buffers = {"running_mean": self.running_mean, "running_var": self.running_var}

    def _arguments(self):
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum)

    def kernel_arguments(self):
        return dict(running_mean=self.running_mean.data, running_var=self.running_var.data, eps=self.eps)

    def output_shape(self, shape):
        _expect_4d(self, shape, self.num_features)
        return tuple(shape)

    def forward(self, x):
        self.output_shape(x.shape)
        _expect_dtype(self, x)
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                            self.momentum, self.eps)


class Sequential(Module):
    """Layers run in order. `net[k]` is layer k, `net[:k]` a Sequential of the first k
    layers (sharing them), so a forward can stop at, and a backward start from, any layer.
    A Sequential is also a layer (a block of a bigger net), with state dict keys like
    PyTorch's ("3.1.weight")."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x):
        index = 0
        while index < len(self.layers):
            pad, conv, norm = _fusion(self.layers[index : index + 3], x.shape) if _fusing.get() else (None,) * 3
            if conv is None:
                x, index = self.layers[index](x), index + 1
            else:
                x = conv.forward_fused(x, pad, norm)
                index += (pad is not None) + 1 + (norm is not None)
        return x

    def output_shape(self, shape):
        for index, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as error:
                raise ValueError(f"layer {index}: {error}") from None
        return shape

    def largest_activation(self, shape):
        """The most numbers any layer, inside blocks too, outputs on an input of `shape`."""
        largest = 0
        for layer in self.layers:
            if isinstance(layer, Sequential):
                largest = max(largest, layer.largest_activation(shape))
            shape = layer.output_shape(shape)
            largest = max(largest, math.prod(shape))
        return largest

    def forward_with_state(self, x):
        """The output and, for the DeconvNet steps, every layer's input and state."""
        inputs, states = [], []
        for layer in self.layers:
            inputs.append(x)
            x, state = layer.forward_with_state(x)
            states.append(state)
        return x, (inputs, states)

    def zeiler_step(self, signal, layer_input, state=None):
        """The layers' DeconvNet steps in reverse, through the state its forward recorded."""
        if state is None:
            _, state = self.forward_with_state(layer_input)
        inputs, states = state
        for layer, x, layer_state in zip(reversed(self.layers), reversed(inputs), reversed(states)):
            signal = layer.zeiler_step(signal, x, layer_state)
        return signal

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

    def named_buffers(self):
        return [(f"{i}.{name}", b) for i, layer in enumerate(self.layers) for name, b in layer.named_buffers()]

    def named_state(self):
        return [(f"{i}.{name}", t) for i, layer in enumerate(self.layers) for name, t in layer.named_state()]

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def state_dict(self):
        """Parameter and buffer arrays under PyTorch-style keys ("0.weight", "3.bias", ...)."""
        return {name: p.data for name, p in self.named_state()}

    def load_state_dict(self, state):
        """Copies arrays into the parameters and buffers; every key must be present and of
        the right shape."""
        expected = dict(self.named_state())
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
        return [layer.spec_entry() for layer in self.layers]

    def spec_entry(self):
        return {"type": type(self).__name__, "layers": self.spec()}

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}".replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _fusion(layers, shape):
    """(ZeroPad2d or None, Conv2d, BatchNorm2d or None) where `layers` (up to three, on an
    input of `shape`) begin with a convolution that runs with its neighbours as one op
    (Conv2d.takes_padding_of, Conv2d.folds); (None, None, None) where they do not."""
    padded = len(layers) > 1 and isinstance(layers[1], Conv2d) and layers[1].takes_padding_of(layers[0])
    pad = layers[0] if padded else None
    rest = layers[1:] if pad is not None else layers[:2]
    conv = rest[0] if isinstance(rest[0], Conv2d) else None
    if conv is None:
        return None, None, None
    norm = rest[1] if len(rest) > 1 and conv.folds(rest[1], shape if pad is None else pad.output_shape(shape)) else None
    return (pad, conv, norm) if pad is not None or norm is not None else (None, None, None)


class Residual(Sequential):
    """x + layers(x): a residual block (the branch keeps the shape). The sum backpropagates
    to both in every mode; its DeconvNet step is the branch's reconstruction plus the
    signal itself (the identity's)."""

    def forward(self, x):
        return F.add(super().forward(x), x)

    def output_shape(self, shape):
        out = super().output_shape(shape)
        if tuple(out) != tuple(shape):
            raise ValueError(f"a residual branch must keep the shape {tuple(shape)}, it gives {tuple(out)}")
        return out

    def forward_with_state(self, x):
        out, state = super().forward_with_state(x)
        return F.add(out, x), state

    def zeiler_step(self, signal, layer_input, state=None):
        return super().zeiler_step(signal, layer_input, state) + signal


def fold_batchnorm(net):
    """A copy of `net` (evaluation mode) with every BatchNorm2d that follows a Conv2d merged
    into it: w' = w gamma / sqrt(var + eps) per output channel, b' = (b - mean) gamma /
    sqrt(var + eps) + beta. The outputs are unchanged (to rounding) and so are the input
    gradients in every mode, since both are per-channel affine maps."""
    layers = []
    for layer in net:
        if isinstance(layer, Sequential):
            layer = type(layer)(*fold_batchnorm(layer).layers)
        if isinstance(layer, BatchNorm2d) and layers and isinstance(layers[-1], Conv2d):
            conv = layers[-1]
            folded = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            bias=True, groups=conv.groups).to(conv.weight.backend)
            folded.weight.data, folded.bias.data = conv.weight.backend.ops.batchnorm.fold(
                conv.weight.data, None if conv.bias is None else conv.bias.data, layer.running_mean.data,
                layer.running_var.data, layer.weight.data, layer.bias.data, layer.eps)
            layers[-1] = folded
            continue
        layers.append(layer)
    return Sequential(*layers).eval()


LAYER_TYPES = {cls.__name__: cls for cls in
               (Conv2d, Linear, ReLU, ReLU6, MaxPool2d, AdaptiveAvgPool2d, Flatten, Dropout, LocalResponseNorm,
                ZeroPad2d, BatchNorm2d, Sequential, Residual)}


def build(specs):
    """Rebuilds a Sequential from `Sequential.spec()` output (containers nest theirs)."""
    layers = []
    for position, spec in enumerate(specs):
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in LAYER_TYPES:
            raise ValueError(f"unknown layer type {kind!r} at position {position}: "
                             f"expected one of {', '.join(LAYER_TYPES)}")
        try:
            if issubclass(LAYER_TYPES[kind], Sequential):
                layers.append(LAYER_TYPES[kind](*build(spec.pop("layers")).layers, **spec))
            else:
                layers.append(LAYER_TYPES[kind](**spec))
        except (TypeError, KeyError) as error:
            raise ValueError(f"bad arguments for {kind} at position {position}: {error}") from None
    return Sequential(*layers)
