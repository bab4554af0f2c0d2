"""models.load: one entry point for every weight format the project reads."""
import os

from ..engine.errors import regular_file
from .weights import ModelFileError, check_model, is_native, load_native, read_safetensors

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.safetensors")
FORMATS = ".safetensors (ours, or a torchvision state dict), .pth/.pt (torchvision), .onnx, .mat (MatConvNet)"


def load(path=None, arch=None, classes=None):
    """A models.Model from a weight file, its format recognised from the file.

    path: our safetensors files; torchvision AlexNet / VGG-16 and EfficientNet-Lite state
    dicts (.pth, or the same tensors as .safetensors), read without PyTorch; ONNX graphs;
    MatConvNet SimpleNN .mat files; or the name of a network whose weights an installed
    package ships ("efficientnet-lite0", 1, 2). Without a path: the default model shipped
    in models/. arch: "alexnet" or
    "vgg16" where a torchvision file cannot tell. classes: a text file of class names, one
    per line, for files that carry none.
    """
    from . import efficientnet, importers

    if path is None:
        if not os.path.isfile(DEFAULT_PATH):
            raise ModelFileError(f"{DEFAULT_PATH}: the shipped default model is missing "
                                 "(reinstall, or run `deepinside train`)")
        path = DEFAULT_PATH
    if path in efficientnet.PACKAGES:
        path = efficientnet.package_file(path)
    path = regular_file(path, "weight file", ModelFileError)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".safetensors":
        metadata, tensors = read_safetensors(path)
        if is_native(metadata):
            model = load_native(path, metadata, tensors)
        elif efficientnet.is_efficientnet_lite(tensors):
            model = efficientnet.from_state_dict(tensors, path)
        else:
            model = importers.from_torchvision(tensors, path, arch)
    elif extension in (".pth", ".pt"):
        from .torch_pickle import TorchFileError, load_state_dict
        try:
            state = load_state_dict(path)
        except TorchFileError as error:
            raise ModelFileError(str(error)) from None
        if efficientnet.is_efficientnet_lite(state):
            model = efficientnet.from_state_dict(state, path)
        else:
            model = importers.from_torchvision(state, path, arch)
    elif extension == ".onnx":
        model = importers.from_onnx(path)
    elif extension == ".mat":
        model = importers.from_matconvnet(path)
    else:
        raise ModelFileError(f"{path}: unknown weight format {extension or '(no extension)'!r}; "
                             f"expected {FORMATS}")
    if classes is not None:
        model.classes = importers.read_class_names(classes, len(model.classes))
    check_model(path, model)
    return model
