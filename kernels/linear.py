"""Fully connected layer: y = x @ W^T + b, W of shape (out, in). NumPy reference, then
the device path on gemm.cu's tiled SGEMM and bias.cu's bias kernels."""
from .family import Device, OpFamily
from .gemm import gemm_product_device


def linear_forward(x, weight, bias):
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y


def linear_backward_data(grad_y, weight):
    return grad_y @ weight


def linear_backward_weights(grad_y, x):
    return grad_y.T @ x


def linear_backward_bias(grad_y):
    return grad_y.sum(axis=0)


def linear_forward_device(device: Device, x, weight, bias):
    x, weight = device.float32("x", x, 2), device.float32("weight", weight, 2)
    y = gemm_product_device(device, x, weight, transpose_b=True)
    if bias is not None:
        device.elementwise("add_row_bias", y.size, y, device.float32("bias", bias, 1), y.shape[0], y.shape[1])
    return y


def linear_backward_data_device(device: Device, grad_y, weight):
    return gemm_product_device(device, device.float32("grad_y", grad_y, 2), device.float32("weight", weight, 2))


def linear_backward_weights_device(device: Device, grad_y, x):
    return gemm_product_device(device, device.float32("grad_y", grad_y, 2), device.float32("x", x, 2),
                               transpose_a=True)


def linear_backward_bias_device(device: Device, grad_y):
    grad_y = device.float32("grad_y", grad_y, 2)
    out = device.empty((grad_y.shape[1],))
    device.elementwise("column_sum", grad_y.shape[1], grad_y, out, grad_y.shape[0], grad_y.shape[1])
    return out


def linear_zeiler(ops, signal, x, weight, bias=None):
    """DeconvNet: the transposed weights, i.e. backward-data."""
    return ops.backward_data(signal, weight)


LINEAR = OpFamily(
    "linear", ("gemm.cu", "bias.cu"),
    numpy=dict(forward=linear_forward, backward_data=linear_backward_data,
               backward_weights=linear_backward_weights, backward_bias=linear_backward_bias),
    device=dict(forward=linear_forward_device, backward_data=linear_backward_data_device,
                backward_weights=linear_backward_weights_device, backward_bias=linear_backward_bias_device),
    zeiler=linear_zeiler)
