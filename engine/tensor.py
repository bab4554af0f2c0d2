"""Tensor and reverse-mode differentiation with a choice of backward rule.

Each operation that involves a tensor requiring gradients records a node: its parent
tensors and a closure `backward(grad_out, mode, needed)` that returns one gradient per
parent (None where `needed` says it is not wanted). The mode (kernels.Mode: backprop,
deconvnet, guided) is an argument of the backward pass that only ReLU reads
(docs/DESIGN.md). Gradients are computed only along paths that reach what was asked for,
so a saliency pass (`engine.grad(score, [image])`) computes no weight gradient.

A tensor knows its backend (engine/backend.py): its data is an array of that backend,
and every gradient computed for it lives there too.
"""
import contextlib

import numpy as np

from .backend import default, get_backend, to_numpy
from ..kernels import Mode, as_mode

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Operations inside record no graph; their results cannot be differentiated."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


def _freed_graph(*_):
    raise RuntimeError("backward through a graph a second time: its saved arrays were freed "
                       "by the first backward; pass retain_graph=True to the first one")


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "backend", "_parents", "_backward", "_op")

    def __init__(self, data, requires_grad=False, backend=None):
        """data: an array (NumPy or CuPy), a Tensor or anything array-like; integers become
        float32. backend: a name or Backend; by default a Tensor's own backend, else the
        default backend (engine.use_backend, engine.set_backend)."""
        if isinstance(data, Tensor):
            backend = data.backend if backend is None else backend
            data = data.data
        self.backend = default() if backend is None else get_backend(backend)
        array = self.backend.asarray(data)
        if array.dtype.kind != "f":
            array = array.astype(np.float32)
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None
        self._op = "leaf"

    @classmethod
    def _from_op(cls, data, parents, backward_fn, op, backend):
        """The result of an operation on `backend`: records the node if any parent requires grad."""
        out = cls.__new__(cls)
        out.data, out.grad, out._op, out.backend = data, None, op, backend
        out.requires_grad = _grad_enabled and any(p.requires_grad for p in parents)
        out._parents = tuple(parents) if out.requires_grad else ()
        out._backward = backward_fn if out.requires_grad else None
        return out

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    def numpy(self):
        """The data as a NumPy array (a copy when it lives on a device)."""
        return to_numpy(self.data)

    def detach(self):
        return Tensor(self.data, backend=self.backend)

    def to(self, backend):
        """This tensor on another backend: a new leaf holding a copy of the data (the move
        is not differentiated); the tensor itself where it already lives there."""
        backend = get_backend(backend)
        return self if backend is self.backend else Tensor(self.data, self.requires_grad, backend)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, backend={self.backend.name}, op={self._op}{grad})"

    def backward(self, grad=None, mode=Mode.BACKPROP, inputs=None, retain_graph=False):
        """Accumulates d(self)/d(leaf) into every leaf's .grad (or only into `inputs`).

        grad: the signal to start from (the gradient of some scalar with respect to this
        tensor); may be omitted only for a one-element tensor. mode: a kernels.Mode or its
        name: "backprop" (the true gradient), "deconvnet" or "guided".
        """
        targets = None if inputs is None else list(inputs)
        grads = _run_backward(self, grad, mode, targets, retain_graph)
        for tensor, g in grads.items():
            tensor.grad = g if tensor.grad is None else tensor.grad + g


def grad(output, inputs, grad_output=None, mode=Mode.BACKPROP, retain_graph=False):
    """Gradients of `output` with respect to each of `inputs`, returned, not stored.

    Only the gradients on paths from `output` to `inputs` are computed (as
    torch.autograd.grad). An input the output does not depend on gets zeros.
    """
    inputs = list(inputs)
    grads = _run_backward(output, grad_output, mode, inputs, retain_graph)
    return [grads[t] if t in grads else t.backend.xp.zeros_like(t.data) for t in inputs]


def _topological_order(root):
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if id(p) not in seen)
    return order  # parents before children


def _run_backward(root, grad_output, mode, targets, retain_graph):
    mode = as_mode(mode)  # the one check of a user's mode
    if not root.requires_grad:
        raise RuntimeError("this tensor does not require grad: it was computed under no_grad(), "
                           "or from tensors none of which has requires_grad=True")
    if grad_output is None:
        if root.data.size != 1:
            raise ValueError(f"backward from a tensor of shape {root.shape} needs `grad`, "
                             "a gradient of the same shape")
        grad_output = root.backend.xp.ones_like(root.data)
    grad_output = grad_output.data if isinstance(grad_output, Tensor) else grad_output
    grad_output = root.backend.asarray(grad_output, dtype=root.dtype)
    if grad_output.shape != root.shape:
        raise ValueError(f"`grad` has shape {grad_output.shape}, expected {root.shape}")

    order = _topological_order(root)
    target_ids = None if targets is None else {id(t) for t in targets}
    # Which nodes lead to something whose gradient was asked for.
    wanted = {}
    for node in order:
        if target_ids is None:
            wanted[id(node)] = node.requires_grad
        else:
            wanted[id(node)] = id(node) in target_ids or any(wanted[id(p)] for p in node._parents)

    grads = {id(root): grad_output}
    results = {}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None or not wanted[id(node)]:
            continue
        if (node._backward is None) if target_ids is None else (id(node) in target_ids):
            results[node] = g
        if node._backward is None:
            continue
        needed = [p.requires_grad and wanted[id(p)] for p in node._parents]
        if not any(needed):
            continue
        parent_grads = node._backward(g, mode, needed)
        if not retain_graph:
            node._backward = _freed_graph
        for parent, pg in zip(node._parents, parent_grads):
            if pg is None:
                continue
            key = id(parent)
            grads[key] = pg if key not in grads else grads[key] + pg
    return results
