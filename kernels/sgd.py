"""SGD with momentum and weight decay, in place, in PyTorch's convention:

    v <- momentum * v + (g + weight_decay * w)
    w <- w - lr * v
"""


def sgd_update(weight, grad, velocity, lr, momentum, weight_decay):
    step = grad + weight_decay * weight if weight_decay else grad
    velocity *= momentum
    velocity += step
    weight -= lr * velocity
