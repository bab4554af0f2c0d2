"""Architectures, weight files and importers."""
from .architectures import alexnet, cnn_f, shapes_net, vgg16
from .efficientnet import efficientnet_lite
from .loading import load
from .weights import Model, ModelFileError, save, save_model

__all__ = ["alexnet", "cnn_f", "shapes_net", "vgg16", "efficientnet_lite", "Model", "ModelFileError", "load", "save", "save_model"]
