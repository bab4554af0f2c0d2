"""The residual sum of two tensors of one shape. Its backward gives the incoming gradient to
both operands, in every mode; a residual block's DeconvNet step is its branch's
reconstruction plus the identity's (engine.nn.Residual). Device path: add.cu."""
from .family import Device, OpFamily, expect


def add_forward(a, b):
    return a + b


def add_forward_device(device: Device, a, b):
    a, b = device.float32("a", a), device.float32("b", b)
    expect(a.shape == b.shape, f"add: shapes {a.shape} and {b.shape} differ")
    y = device.empty(a.shape)
    device.elementwise("add_forward", a.size, a, b, y, a.size)
    return y


ADD = OpFamily("add", ("add.cu",), numpy=dict(forward=add_forward), device=dict(forward=add_forward_device))
