"""Reading PyTorch `.pth` state dicts without PyTorch and without running their pickles.

A `.pth` file is a pickle whose tensors point at raw storages kept beside it: in a zip
archive (`torch.save` since PyTorch 1.6) or, in the legacy format of older published
weights, in the same file after the pickle. Pickle can call any importable function, so
the unpickler here admits only the handful of names a tensor state dict uses (as
`torch.load(weights_only=True)` does) and maps each onto a NumPy stand-in of ours; any
other name (os.system, builtins.eval, ...) is refused before anything runs.

Sizes are checked before anything is allocated: every storage against the bytes the file
really holds (a zip member's declared size, what is left of a legacy file), every tensor
and all of them together against the parameter limit (models.weights), so that a small
file declaring gigabytes (a "bomb", a stride-0 view of a huge shape) is refused.
"""
import io
import math
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .weights import max_parameters

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class TorchFileError(ValueError):  # models.load reports it as a ModelFileError
    """A .pth file that is not a plain tensor state dict, or is damaged."""


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2's job: a view of a flat NumPy storage (copied once
    the whole file is read; legacy files fill their storages after the pickle)."""
    size, stride = tuple(size), tuple(stride)
    if not all(isinstance(v, int) and v >= 0 for v in size) or math.prod(size) > max_parameters():
        raise TorchFileError(f"a tensor declares the shape {size!r:.60}, over the parameter limit or not a shape")
    if not size:
        return storage[offset : offset + 1].reshape(())
    last = offset + sum((s - 1) * st for s, st in zip(size, stride) if s > 0)
    if last >= storage.size or offset < 0 or min(stride, default=0) < 0:
        raise TorchFileError("a tensor reaches outside its storage")
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[st * storage.itemsize for st in stride], writeable=False)


def _rebuild_parameter(data, requires_grad, backward_hooks, *_ignored):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle, load_storage):
        super().__init__(handle)
        self.load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise TorchFileError(f"refused: the pickle asks for {module}.{name}, which a tensor "
                                 "state dict never needs (the file may be malicious)")
        return ALLOWED[(module, name)]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise TorchFileError(f"refused: unexpected persistent id {pid!r:.80}")
        return self.load_storage(pid[1].dtype, str(pid[2]), int(pid[4]))


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        declared = 0
        for member in archive.infolist():
            if member.flag_bits & 0x1:
                raise TorchFileError(f"member {member.filename} is encrypted")
            if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise TorchFileError(f"member {member.filename} uses compression method {member.compress_type}, "
                                     "which PyTorch never writes")
            declared += member.file_size
        if declared > 8 * max_parameters():
            raise TorchFileError(f"the archive declares {declared} bytes, more than the parameter limit allows "
                                 "(raise $DEEPINSIDE_MAX_PARAMETERS to allow it)")
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise TorchFileError("no data.pkl in the archive")
        prefix = pickles[0][: -len("data.pkl")]

        def load_storage(dtype, key, count):
            member = archive.getinfo(f"{prefix}data/{key}")
            if count < 0 or member.file_size < count * dtype.itemsize:
                raise TorchFileError(f"storage {key} is truncated")
            raw = archive.read(member)
            if len(raw) < count * dtype.itemsize:
                raise TorchFileError(f"storage {key} is truncated")
            return np.frombuffer(raw, dtype=dtype, count=count)

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _read_legacy(handle):
    """The pre-1.6 format: magic, protocol, system info, the pickle, storage keys, storages."""
    plain = _RestrictedUnpickler(handle, None)
    if plain.load() != LEGACY_MAGIC:
        raise TorchFileError("not a PyTorch file (no zip archive, no legacy magic number)")
    plain.load()  # protocol version
    plain.load()  # system info (a dict of plain values)
    pending = {}
    remaining = os.fstat(handle.fileno()).st_size - handle.tell()

    def load_storage(dtype, key, count):
        if key not in pending:
            if not 0 <= count * dtype.itemsize <= remaining:  # the storage must be in the file
                raise TorchFileError(f"storage {key} declares {count} elements, more than the file holds")
            pending[key] = (dtype, count, np.empty(count, dtype))
        return pending[key][2]

    state = _RestrictedUnpickler(handle, load_storage).load()
    for key in _RestrictedUnpickler(handle, None).load():
        dtype, count, storage = pending[str(key)]
        (stored,) = struct.unpack("<q", handle.read(8))
        raw = handle.read(stored * dtype.itemsize)
        if stored != count or len(raw) != count * dtype.itemsize:
            raise TorchFileError(f"storage {key} is truncated")
        storage[:] = np.frombuffer(raw, dtype=dtype)
    return state


def load_state_dict(path):
    """{name: NumPy array} from a PyTorch state-dict file, running none of its code."""
    try:
        if zipfile.is_zipfile(path):
            state = _read_zip(path)
        else:
            with open(path, "rb") as handle:
                if handle.read(4) == b"PK\x03\x04":
                    raise TorchFileError("a zip archive cut short (its directory is missing): truncated")
                handle.seek(0)
                state = _read_legacy(handle)
    except TorchFileError as error:
        raise TorchFileError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, KeyError, IndexError,
            TypeError, AttributeError, ValueError, OverflowError) as error:
        raise TorchFileError(f"{path}: not a readable PyTorch state dict ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray)
                                              for k, v in state.items()):
        raise TorchFileError(f"{path}: the pickle holds something other than a dict of named tensors")
    if sum(value.size for value in state.values()) > max_parameters():
        raise TorchFileError(f"{path}: the tensors hold more numbers than the parameter limit "
                             "(raise $DEEPINSIDE_MAX_PARAMETERS to allow it)")
    return OrderedDict((name, np.array(value)) for name, value in state.items())
