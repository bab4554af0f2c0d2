"""PyTorch twins of engine networks (same weights), with DeconvNet and guided backprop
through ReLU backward hooks, as a peer library would do it."""
import numpy as np
import torch

from deepinside.engine import nn


class TorchResidual(torch.nn.Sequential):
    def forward(self, x):
        return super().forward(x) + x


def torch_twin(net, dtype=torch.float64):
    """A torch.nn.Sequential in evaluation mode with the same layers, weights and buffers."""
    layers = []
    for layer in net:
        if isinstance(layer, nn.Residual):
            twin = TorchResidual(*torch_twin(layer, dtype))
        elif isinstance(layer, nn.Sequential):
            twin = torch_twin(layer, dtype)
        elif isinstance(layer, nn.Conv2d):
            twin = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                   layer.stride, layer.padding, bias=layer.bias is not None, groups=layer.groups)
        elif isinstance(layer, nn.BatchNorm2d):
            twin = torch.nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum)
        elif isinstance(layer, nn.ReLU6):
            twin = torch.nn.ReLU6()
        elif isinstance(layer, nn.ZeroPad2d):
            twin = torch.nn.ZeroPad2d(layer.padding)
        elif isinstance(layer, nn.Linear):
            twin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        elif isinstance(layer, nn.ReLU):
            twin = torch.nn.ReLU()
        elif isinstance(layer, nn.MaxPool2d):
            twin = torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)
        elif isinstance(layer, nn.LocalResponseNorm):
            twin = torch.nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            twin = torch.nn.AdaptiveAvgPool2d(layer.output_size)
        elif isinstance(layer, nn.Flatten):
            twin = torch.nn.Flatten()
        elif isinstance(layer, nn.Dropout):
            twin = torch.nn.Dropout(layer.p)
        else:
            raise TypeError(f"no torch twin for {layer!r}")
        if not isinstance(layer, nn.Sequential):
            for name, tensor in layer.named_state():
                getattr(twin, name).data = torch.from_numpy(np.array(tensor.data)).to(dtype)
        layers.append(twin)
    return torch.nn.Sequential(*layers).to(dtype).eval()


def _relu_hook(mode):
    def hook(module, grad_input, grad_output):
        if mode == "deconvnet":
            return (grad_output[0].clamp(min=0),)
        if mode == "guided":
            return (grad_input[0].clamp(min=0),)
        return None
    return hook


def torch_input_gradient(twin, x, grad_output, mode):
    """(output, d<output, grad_output>/dx) computed by torch in float64."""
    handles = [m.register_full_backward_hook(_relu_hook(mode))
               for m in twin.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    try:
        xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
        out = twin(xt)
        (grad,) = torch.autograd.grad(out, xt, torch.from_numpy(np.asarray(grad_output, np.float64)))
    finally:
        for handle in handles:
            handle.remove()
    return out.detach().numpy(), grad.numpy()
