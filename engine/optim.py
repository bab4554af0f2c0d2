"""Stochastic gradient descent with momentum and weight decay (PyTorch's convention)."""


class SGD:
    """Updates each parameter in place on its own backend (create the optimiser after
    moving the network with .to(backend): the velocities live beside the parameters)."""

    def __init__(self, parameters, lr, momentum=0.0, weight_decay=0.0):
        self.parameters = list(parameters)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.velocities = [p.backend.xp.zeros_like(p.data) for p in self.parameters]

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None

    def step(self):
        for p, velocity in zip(self.parameters, self.velocities):
            if p.grad is not None:
                p.backend.ops.sgd.update(p.data, p.grad, velocity, self.lr, self.momentum, self.weight_decay)
