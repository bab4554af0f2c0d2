"""Softmax cross-entropy, averaged over the batch: logits (N, K), integer labels (N,)."""
import numpy as np


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
