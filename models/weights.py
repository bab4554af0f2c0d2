"""Weight files: safetensors with the architecture and the preprocessing in its metadata.

No pickle anywhere: the network is rebuilt from the layer specs in the metadata, then every
tensor is checked (name, shape, dtype, finiteness) before a single one is copied in.
Writing goes to a temporary file renamed into place, so a failed save leaves nothing.

Limits, checked against what a file declares before anything is allocated: at most
$DEEPINSIDE_MAX_PARAMETERS numbers in all (default 300 M; VGG-16 has 138 M) and an input
of at most $DEEPINSIDE_MAX_INPUT_SIZE pixels a side (default 2048). Every model read or
written is checked to run (`check_model`): its layers fit together on an input of its
declared size and give one score per class.
"""
import json
import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from ..engine import InputError, nn
from ..engine.errors import limit, regular_file

FORMAT = "deepinside-1"
MEAN_KEY = "meta.mean"
STD_KEY = "meta.std"
DEFAULT_MAX_PARAMETERS = 300_000_000
DEFAULT_MAX_INPUT_SIZE = 2048
SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}
MAX_HEADER_BYTES = 64 << 20


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
    """Writes `net` and its metadata to `path` (safetensors) atomically, with the file mode
    the umask gives, and only a model that `check_model` accepts (it loads and runs).
    Without class names the classes are numbered."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    model = Model(net=net, classes=list(classes) if classes is not None else None, input_size=input_size,
                  image_size=image_size if image_size is not None else input_size,
                  mean=np.zeros(3, np.float32) if mean is None else np.asarray(mean, np.float32),
                  std=np.ones(3, np.float32) if std is None else np.asarray(std, np.float32),
                  synsets=list(synsets) if synsets is not None else None)
    if model.classes is None:
        try:
            outputs = net.output_shape((1, 3, input_size, input_size))[-1]
        except ValueError:
            outputs = 0  # check_model says why
        model.classes = [f"class {i}" for i in range(outputs)]
    check_model(path, model)
    tensors = {name: np.ascontiguousarray(np.asarray(p.numpy(), np.float32)) for name, p in net.named_state()}
    tensors[MEAN_KEY] = np.ascontiguousarray(model.mean, np.float32)
    tensors[STD_KEY] = np.ascontiguousarray(model.std, np.float32)
    metadata = {"format": FORMAT, "architecture": json.dumps(net.spec()), "classes": json.dumps(model.classes),
                "input_size": str(model.input_size), "image_size": str(model.image_size),
                "synsets": json.dumps(model.synsets)}
    def write(temporary):
        try:
            save_file(tensors, temporary, metadata=metadata)
        except SafetensorError as error:  # the library's wording for an OSError
            raise OSError(str(error)) from None
    write_atomically(check_new_path(path, "weight file"), write)


def check_new_path(path, what):
    """Refuses, before any work, a path the file system could not create: an empty name, a
    name or a path over the system's length limits."""
    path = os.path.abspath(os.fspath(path)) if path else ""
    folder, name = os.path.split(path)
    if not name:
        raise InputError(f"the {what} name is empty")
    existing = folder
    while existing and not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    longest_name = os.pathconf(existing or "/", "PC_NAME_MAX")
    if any(len(part.encode()) > longest_name - 40 for part in path.split(os.sep)):  # room for our temporary names
        raise InputError(f"{path[:60]}...: a name in this path is too long for the file system")
    if len(path.encode()) > os.pathconf(existing or "/", "PC_PATH_MAX") - 40:
        raise InputError(f"{path[:60]}...: the path is too long for the file system")
    return path


def write_atomically(path, write):
    """Calls write(temporary) on a temporary file beside `path`, then renames it into place:
    `path` is either untouched or complete. Temporary files left by a killed run (their
    process gone) are removed first; an OSError names `path`, not the temporary file."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    prefix = f".{name}.deepinside-"
    remove_stale(folder, prefix)
    temporary = os.path.join(folder, f"{prefix}{os.getpid()}.tmp")
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        raise InputError(f"{path}: cannot write the file ({error.strerror or error})") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def remove_stale(folder, prefix):
    """Removes what a killed run of ours left in `folder`: entries named `prefix<pid>...`
    whose process no longer exists."""
    import shutil

    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        digits = name[len(prefix):].split(".", 1)[0].split("-", 1)[0]
        if name.startswith(prefix) and digits.isdigit() and not _alive(int(digits)):
            target = os.path.join(folder, name)
            shutil.rmtree(target, ignore_errors=True) if os.path.isdir(target) else os.unlink(target)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def max_parameters():
    return limit("MAX_PARAMETERS", DEFAULT_MAX_PARAMETERS)


def check_element_count(path, what, count, total=0):
    """Refuses a tensor (or all tensors so far, `total`) over the parameter limit."""
    ceiling = max_parameters()
    if count > ceiling or total > ceiling:
        raise ModelFileError(f"{path}: {what} declares {max(count, total)} numbers, more than the limit of "
                             f"{ceiling} (raise $DEEPINSIDE_MAX_PARAMETERS to allow it)")


def _safetensors_header(path):
    """The header of a safetensors file, every tensor's dtype, shape and place in the file
    checked against the file's real size and the limits before anything is read."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if length is None or length > min(size - 8, MAX_HEADER_BYTES):
            raise ModelFileError(f"{path}: not a safetensors file, or truncated (its header does not fit in the file)")
        text = handle.read(length)
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path}: damaged metadata: it must map names to strings")
    data_bytes, total = size - 8 - length, 0
    for name, entry in header.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                and all(_is_int(v) and v >= 0 for v in entry["shape"] + entry["data_offsets"])):
            raise ModelFileError(f"{path}: tensor {name!r} has a damaged header entry")
        if entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise ModelFileError(f"{path}: tensor {name!r} has dtype {entry.get('dtype')}, which deepinside does "
                                 f"not read (it reads {', '.join(SAFETENSORS_DTYPES)})")
        count = math.prod(entry["shape"])
        total += count
        check_element_count(path, f"tensor {name!r}", count, total)
        begin, end = entry["data_offsets"]
        if not begin <= end <= data_bytes or end - begin != count * np.dtype(SAFETENSORS_DTYPES[entry["dtype"]]).itemsize:
            raise ModelFileError(f"{path}: tensor {name!r} does not fit its place in the file (truncated or damaged)")
    return metadata


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_safetensors(path):
    from safetensors import SafetensorError, safe_open

    path = regular_file(path, "weight file", ModelFileError)
    _safetensors_header(path)
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
    expected = dict(net.named_state())
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


def check_model(path, model):
    """A model that can run: sizes within the limits, finite preprocessing and weights, its
    layers fitting together on an input of its size and giving one score per class."""
    largest = limit("MAX_INPUT_SIZE", DEFAULT_MAX_INPUT_SIZE)
    for name, value in (("input size", model.input_size), ("image size", model.image_size)):
        if not _is_int(value) or not 1 <= value <= largest:
            raise ModelFileError(f"{path}: the {name} {value!r} is not a whole number from 1 to {largest} "
                                 "(raise $DEEPINSIDE_MAX_INPUT_SIZE to allow more)")
    if model.image_size < model.input_size:
        raise ModelFileError(f"{path}: the image size {model.image_size} is smaller than the input size "
                             f"{model.input_size} the network crops from it")
    mean, std = np.asarray(model.mean), np.asarray(model.std)
    if mean.shape not in ((3,), (3, model.input_size, model.input_size)) or not np.isfinite(mean).all():
        raise ModelFileError(f"{path}: the mean must be 3 finite values or a finite (3, {model.input_size}, "
                             f"{model.input_size}) image, got shape {mean.shape}")
    if std.shape != (3,) or not (np.isfinite(std).all() and (std > 0).all()):
        raise ModelFileError(f"{path}: the standard deviation must be 3 finite positive values")
    check_element_count(path, "the network", sum(p.data.size for _, p in model.net.named_state()))
    for name, parameter in model.net.named_state():
        if not np.isfinite(parameter.numpy()).all():
            raise ModelFileError(f"{path}: tensor {name!r} holds NaN or infinite values")
    if len(model.net) == 0:
        raise ModelFileError(f"{path}: the network has no layers")
    try:
        shape = model.net.output_shape((1, 3, model.input_size, model.input_size))
    except ValueError as error:
        raise ModelFileError(f"{path}: the network cannot run on a {model.input_size}x{model.input_size} "
                             f"input: {error}") from None
    if len(shape) != 2 or shape[1] < 1:
        raise ModelFileError(f"{path}: the network gives an output of shape {shape}, not one score per class")
    for name, names in (("class names", model.classes), ("WordNet ids", model.synsets)):
        if names is None and name == "WordNet ids":
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelFileError(f"{path}: the {name} must be a list of strings")
        if len(names) != shape[1]:
            raise ModelFileError(f"{path}: {len(names)} {name} for a network with {shape[1]} outputs")


def save_model(path, model):
    save(path, model.net, classes=model.classes, input_size=model.input_size, image_size=model.image_size,
         mean=model.mean, std=model.std, synsets=model.synsets)


def is_native(metadata):
    return metadata.get("format") == FORMAT


def load_native(path, metadata=None, tensors=None):
    """Reads a weight file written by `save`, checking its tensors against its own
    architecture (models.load then checks the whole model runs: check_model)."""
    if metadata is None:
        metadata, tensors = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a deepinside weight file (metadata format is "
                             f"{metadata.get('format')!r}, expected {FORMAT!r})")
    specs = _metadata_json(path, metadata, "architecture")
    _check_specs(path, specs)
    classes = _metadata_json(path, metadata, "classes")
    synsets = _metadata_json(path, metadata, "synsets", default="null")
    sizes = [metadata.get(key, "") for key in ("input_size", "image_size")]
    if not all(isinstance(s, str) and s.isdigit() and len(s) < 10 for s in sizes):
        raise ModelFileError(f"{path}: damaged metadata: input_size and image_size must be whole numbers, got {sizes}")
    try:
        net = nn.build(specs)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None

    mean, std = tensors.pop(MEAN_KEY, None), tensors.pop(STD_KEY, np.ones(3, np.float32))
    if mean is None:
        raise ModelFileError(f"{path}: tensor {MEAN_KEY!r} is missing")
    check_tensors(path, net, tensors, dtype=np.float32)
    net.load_state_dict(tensors)
    net.eval()
    if classes is None:  # a file that names no classes: numbered ones, as many as the outputs
        try:
            outputs = net.output_shape((1, 3, int(sizes[0]), int(sizes[0])))[-1]
        except ValueError:
            outputs = 0  # a network that cannot run: check_model says why
        classes = [f"class {i}" for i in range(outputs)]
    return Model(net=net, classes=classes, input_size=int(sizes[0]), image_size=int(sizes[1]), mean=mean, std=std,
                 synsets=synsets)


def _metadata_json(path, metadata, key, default=None):
    text = metadata.get(key, default)
    if text is None:
        raise ModelFileError(f"{path}: damaged metadata: {key!r} is missing")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path}: damaged metadata: {key!r} is not valid JSON (or nested too deeply)") from None


def _plain_argument(value):
    """A layer argument as our files write them: a bool, a bounded whole number, a finite
    number, or up to four whole numbers (an output size, a padding)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return 1 <= len(value) <= 4 and all(_is_int(v) and abs(v) < 2 ** 31 for v in value)
    return (_is_int(value) and abs(value) < 2 ** 31) or (isinstance(value, float) and math.isfinite(value))


CONTAINERS = ("Sequential", "Residual")
MAX_NESTING = 4


def _check_specs(path, specs, total=0, depth=0, where="layer "):
    """The architecture's layer list (containers nest theirs, at most MAX_NESTING deep): its
    shape and the size of what it would allocate, checked before a single layer is built.
    Returns the number of values it would allocate."""
    if not isinstance(specs, list) or not specs or depth > MAX_NESTING:
        raise ModelFileError(f"{path}: damaged metadata: the architecture must be a non-empty list of layers, "
                             f"nested at most {MAX_NESTING} deep")
    for position, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise ModelFileError(f"{path}: damaged metadata: {where}{position} is not a layer description")
        size = lambda key: abs(spec[key]) if _is_int(spec.get(key)) else 1  # noqa: E731 - bad values: build says why
        for key, value in spec.items():
            if key == "layers" and spec["type"] in CONTAINERS:
                total = _check_specs(path, value, total, depth + 1, f"{where}{position}.")
            elif key != "type" and not _plain_argument(value):
                raise ModelFileError(f"{path}: {where}{position} ({spec['type']}): argument {key} = {value!r:.40} "
                                     "is not a plain number")
        if spec["type"] == "Conv2d":
            total += size("in_channels") // max(1, size("groups")) * size("out_channels") * size("kernel_size") ** 2
            total += size("out_channels")
        elif spec["type"] == "Linear":
            total += size("in_features") * size("out_features") + size("out_features")
        elif spec["type"] == "BatchNorm2d":
            total += 4 * size("num_features")
        check_element_count(path, f"the architecture up to {where}{position}", total)
    return total
