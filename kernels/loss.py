"""Softmax cross-entropy, averaged over the batch: logits (N, K), integer labels (N,)."""
import numpy as np

from .family import Device, OpFamily, expect


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy_forward(logits, labels):
    """Returns the mean loss (0-d array) and the softmax probabilities (kept for backward)."""
    log_p = log_softmax(logits)
    loss = -log_p[np.arange(len(labels)), labels].mean()
    return np.asarray(loss, logits.dtype), np.exp(log_p)


def softmax_cross_entropy_backward(grad_loss, probabilities, labels):
    grad = probabilities.copy()
    grad[np.arange(len(labels)), labels] -= 1
    return grad * (grad_loss / len(labels))


def softmax_cross_entropy_forward_device(device: Device, logits, labels):
    logits = device.float32("logits", logits, 2)
    labels = device.xp.ascontiguousarray(device.xp.asarray(labels).astype(np.int64))
    n, k = logits.shape
    expect(labels.shape == (n,), f"labels must have shape ({n},), got {labels.shape}")
    expect(bool((labels >= 0).all() and (labels < k).all()), f"labels must lie in [0, {k})")
    probabilities, row_loss, loss = device.empty((n, k)), device.empty((n,)), device.empty(())
    device.launch("softmax_cross_entropy_rows", n, logits, labels, probabilities, row_loss, k)  # a block a row
    device.launch("batch_mean", 1, row_loss, loss.reshape(1), n)
    return loss, probabilities


def softmax_cross_entropy_backward_device(device: Device, grad_loss, probabilities, labels):
    xp = device.xp
    grad_loss = xp.ascontiguousarray(xp.asarray(grad_loss, dtype=np.float32).reshape(1))
    labels = xp.ascontiguousarray(xp.asarray(labels).astype(np.int64))
    n, k = probabilities.shape
    grad = device.empty((n, k))
    device.elementwise("softmax_cross_entropy_backward", grad.size, grad_loss,
                       device.float32("probabilities", probabilities), labels, grad, n, k)
    return grad


SOFTMAX_CROSS_ENTROPY = OpFamily(
    "softmax_cross_entropy", ("loss.cu",),
    numpy=dict(forward=softmax_cross_entropy_forward, backward=softmax_cross_entropy_backward),
    device=dict(forward=softmax_cross_entropy_forward_device, backward=softmax_cross_entropy_backward_device))
