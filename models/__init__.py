"""Architectures, weight files and (later) importers and the trained default model."""
from .architectures import cnn_f, vgg16
from .weights import Model, ModelFileError, load, save

__all__ = ["cnn_f", "vgg16", "Model", "ModelFileError", "load", "save"]
