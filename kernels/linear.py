"""Fully connected layer, NumPy reference path: y = x @ W^T + b, W of shape (out, in)."""
import numpy as np


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
