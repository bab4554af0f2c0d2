"""Stochastic gradient descent with momentum and weight decay (PyTorch's convention)."""
from . import backend


class SGD:
    def __init__(self, parameters, lr, momentum=0.0, weight_decay=0.0):
        self.parameters = list(parameters)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        xp = backend.current().xp
        self.velocities = [xp.zeros_like(p.data) for p in self.parameters]

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None

    def step(self):
        ops = backend.current().ops
        for p, velocity in zip(self.parameters, self.velocities):
            if p.grad is not None:
                ops.sgd_update(p.data, p.grad, velocity, self.lr, self.momentum, self.weight_decay)
