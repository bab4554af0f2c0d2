"""Local response normalisation across channels (AlexNet / CNN-F), PyTorch's convention:

    s_c = k + alpha / size * sum_{j in window(c)} x_j^2,     y_c = x_c * s_c^(-beta)

window(c) = channels c - size//2 .. c + (size-1)//2, clipped to the valid range.
Backward, with window^T(c) = the channels j whose window contains c:

    dL/dx_c = g_c s_c^(-beta) - 2 alpha beta / size * x_c * sum_{j in window^T(c)} g_j x_j s_j^(-beta-1)

The window sums are `size` shifted slice additions over the channel axis.
"""
from .family import Device, OpFamily

# lrn.cu's rungs, by their kernels' suffixes: v1 a thread an element; v2 a thread a column
# of LRN_CHUNK channels, each element's terms computed once into a ring of the window
# (where size <= LRN_RING; v1's kernels elsewhere); v3 v2 with the powers by __powf. The
# engine's: v2 (v1's arithmetic).
VERSIONS = {"v1": "", "v2": "_columns", "v3": "_columns_fast"}
ENGINE_VERSION = "v2"


def _columns(device, kernel, x_shape, size, *arguments):
    """Launches lrn.cu's v2 or v3 `kernel` (a thread a column and run of channels); False
    where `size` is past its ring."""
    if size > device.define("LRN_RING"):
        return False
    n, c, h, w = x_shape
    threads = n * h * w * -(-c // device.define("LRN_CHUNK"))
    device.launch(kernel, -(-threads // device.define("LRN_THREADS")), *arguments)
    return True


def _window_sum(a, before, after):
    """out[:, c] = sum of a[:, c-before .. c+after] over the channels that exist."""
    out = a.copy()
    channels = a.shape[1]
    for shift in range(1, min(before, channels - 1) + 1):  # (a window wider than the channels: all of them)
        out[:, shift:] += a[:, : channels - shift]
    for shift in range(1, min(after, channels - 1) + 1):
        out[:, : channels - shift] += a[:, shift:]
    return out


def lrn_forward(x, size, alpha, beta, k):
    """Returns y and the denominators s (kept for backward)."""
    scale = _window_sum(x * x, size // 2, (size - 1) // 2)
    scale *= alpha / size
    scale += k
    return x * scale ** -beta, scale


def lrn_backward(grad_y, x, scale, size, alpha, beta):
    power = scale ** -beta  # the one power; s^(-beta-1) = s^-beta / s
    weighted = grad_y * x
    weighted *= power
    weighted /= scale
    spread = _window_sum(weighted, (size - 1) // 2, size // 2)
    spread *= x
    spread *= 2 * alpha * beta / size
    grad_x = grad_y * power
    grad_x -= spread
    return grad_x


def lrn_forward_device(device: Device, x, size, alpha, beta, k, version=ENGINE_VERSION):
    x = device.float32("x", x, 4)
    y, scale = device.empty(x.shape), device.empty(x.shape)
    arguments = (x, y, scale, x.shape[0], x.shape[1], x.shape[2] * x.shape[3], size, alpha, beta, k)
    if not (version != "v1" and _columns(device, "lrn_forward" + VERSIONS[version], x.shape, size, *arguments)):
        device.elementwise("lrn_forward", x.size, *arguments)
    return y, scale


def lrn_backward_device(device: Device, grad_y, x, scale, size, alpha, beta, version=ENGINE_VERSION):
    grad_y, x, scale = device.float32("grad_y", grad_y, 4), device.float32("x", x, 4), device.float32("scale", scale, 4)
    grad_x = device.empty(x.shape)
    arguments = (grad_y, x, scale, grad_x, x.shape[0], x.shape[1], x.shape[2] * x.shape[3], size, alpha, beta)
    if not (version != "v1" and _columns(device, "lrn_backward" + VERSIONS[version], x.shape, size, *arguments)):
        device.elementwise("lrn_backward", x.size, *arguments)
    return grad_x


def lrn_zeiler(ops, signal, x, size, alpha, beta, k):
    """DeconvNet: the Jacobian transpose (Zeiler and Fergus left normalisation out)."""
    _, scale = ops.forward(x, size, alpha, beta, k)
    return ops.backward(signal, x, scale, size, alpha, beta)


LRN = OpFamily("lrn", ("lrn.cu",), numpy=dict(forward=lrn_forward, backward=lrn_backward),
               device=dict(forward=lrn_forward_device, backward=lrn_backward_device), zeiler=lrn_zeiler)
