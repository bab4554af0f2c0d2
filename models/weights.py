"""Weight files: safetensors with the architecture and the preprocessing in its metadata.

No pickle anywhere: the network is rebuilt from the layer specs in the metadata, then every
tensor is checked (name, shape, dtype, finiteness) before a single one is copied in.
Writing goes to a temporary file renamed into place, so a failed save leaves nothing.
"""
import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ..engine import InputError, nn

FORMAT = "deepinside-1"
MEAN_KEY = "meta.mean"
STD_KEY = "meta.std"


class ModelFileError(InputError):
    """A weight file that cannot be used; the message names the file and the problem."""


@dataclass
class Model:
    """A network with what is needed to feed it images: the input of a crop with pixel
    values in [0, 255] is (crop - mean) / std."""

    net: nn.Sequential
    classes: list
    input_size: int  # the square crop the network takes
    image_size: int  # the short side images are resized to before cropping
    mean: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # (3,) or (3, H, W), pixel units
    std: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))  # (3,), pixel units
    synsets: list = None  # WordNet ids of the outputs (e.g. "n01440764"), where known


def save(path, net, classes=None, input_size=224, image_size=None, mean=None, std=None, synsets=None):
    """Writes `net` and its metadata to `path` (safetensors), atomically."""
    from safetensors.numpy import save_file

    tensors = {name: np.ascontiguousarray(np.asarray(p.numpy(), np.float32))
               for name, p in net.named_parameters()}
    mean = np.zeros(3, np.float32) if mean is None else np.asarray(mean, np.float32)
    if mean.shape[0] != 3 or mean.ndim not in (1, 3):
        raise ValueError(f"mean must have shape (3,) or (3, H, W), got {mean.shape}")
    tensors[MEAN_KEY] = np.ascontiguousarray(mean)
    std = np.ones(3, np.float32) if std is None else np.asarray(std, np.float32)
    if std.shape != (3,) or not (std > 0).all():
        raise ValueError(f"std must be 3 positive values, got {std}")
    tensors[STD_KEY] = std
    metadata = {
        "format": FORMAT,
        "architecture": json.dumps(net.spec()),
        "classes": json.dumps(list(classes) if classes is not None else None),
        "input_size": str(int(input_size)),
        "image_size": str(int(image_size if image_size is not None else input_size)),
        "synsets": json.dumps(list(synsets) if synsets is not None else None),
    }
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".safetensors")
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def read_safetensors(path):
    from safetensors import SafetensorError, safe_open

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such weight file")
    try:
        with safe_open(path, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{path}: not a readable safetensors file (truncated or corrupt?): {error}") from None
    return metadata, tensors


def check_tensors(path, net, tensors, dtype=None):
    """Every parameter of `net` has a tensor of its shape (and `dtype`, if given), finite,
    and no tensor is left over; otherwise a ModelFileError naming the tensor."""
    expected = dict(net.named_parameters())
    for name in tensors:
        if name not in expected:
            raise ModelFileError(f"{path}: tensor {name!r} belongs to no layer of the architecture")
    for name, parameter in expected.items():
        if name not in tensors:
            raise ModelFileError(f"{path}: tensor {name!r} is missing")
        value = tensors[name]
        wanted = np.dtype(dtype) if dtype is not None else value.dtype
        if tuple(value.shape) != tuple(parameter.shape) or value.dtype != wanted:
            raise ModelFileError(f"{path}: tensor {name!r} is {value.dtype}{list(value.shape)}, "
                                 f"the architecture expects {wanted}{list(parameter.shape)}")
        if not np.isfinite(value).all():
            raise ModelFileError(f"{path}: tensor {name!r} holds non-finite values")


def save_model(path, model):
    save(path, model.net, classes=model.classes, input_size=model.input_size, image_size=model.image_size,
         mean=model.mean, std=model.std, synsets=model.synsets)


def is_native(metadata):
    return metadata.get("format") == FORMAT


def load_native(path, metadata=None, tensors=None):
    """Reads a weight file written by `save`, checking it against its own architecture."""
    if metadata is None:
        metadata, tensors = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a deepinside weight file (metadata format is "
                             f"{metadata.get('format')!r}, expected {FORMAT!r})")
    try:
        specs = json.loads(metadata["architecture"])
        classes = json.loads(metadata["classes"])
        synsets = json.loads(metadata.get("synsets", "null"))
        input_size, image_size = int(metadata["input_size"]), int(metadata["image_size"])
    except (KeyError, ValueError) as error:
        raise ModelFileError(f"{path}: damaged metadata: {error}") from None
    try:
        net = nn.build(specs)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None

    mean = tensors.pop(MEAN_KEY, None)
    std = tensors.pop(STD_KEY, np.ones(3, np.float32))
    check_tensors(path, net, tensors, dtype=np.float32)
    if mean is None or not np.isfinite(mean).all():
        raise ModelFileError(f"{path}: tensor {MEAN_KEY!r} is missing or non-finite")
    if std.shape != (3,) or not (np.isfinite(std).all() and (std > 0).all()):
        raise ModelFileError(f"{path}: tensor {STD_KEY!r} must be 3 positive values")
    out_features = net.layers[-1].out_features if hasattr(net.layers[-1], "out_features") else None
    if classes is not None and out_features is not None and len(classes) != out_features:
        raise ModelFileError(f"{path}: {len(classes)} class names for {out_features} outputs")
    net.load_state_dict(tensors)
    net.eval()
    if classes is None:
        classes = [f"class {i}" for i in range(out_features or 0)]
    return Model(net=net, classes=classes, input_size=input_size, image_size=image_size, mean=mean, std=std,
                 synsets=synsets)
