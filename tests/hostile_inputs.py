"""Hostile inputs for the command line, made in a folder: images, weight files in the four
formats, arguments and output paths. Each case is a command line expected to end with one
line on stderr and exit status 2, having written nothing (tests/test_hostile_inputs.py).

Weight files are written here byte by byte where a library would refuse to write them
(safetensors headers, .pth pickles and zip members); .pth pickles name PyTorch's globals,
so building them needs torch.
"""
import json
import os
import pickle
import random
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
from PIL import Image

SHIPPED_CLASSES = 10
DEEP = 3000  # nesting depth of the deeply nested JSON values


# images ---------------------------------------------------------------------------------

def png_header_only(path, width, height):
    """A PNG whose header declares width x height and holds no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def image_cases(folder):
    """{name: path} of images every command must refuse."""
    rng = np.random.default_rng(0)
    made = {}

    def add(name, write):
        path = folder / name
        write(path)
        made[name] = path

    for width, height in ((1, 100000), (100000, 1), (3, 400), (400, 3)):
        add(f"thin-{width}x{height}.png", lambda p, w=width, h=height: Image.new("L", (w, h)).save(p))
    for width, height in ((100000, 100000), (60000, 2000), (2 ** 31 - 1, 2 ** 31 - 1), (0, 10)):
        add(f"declared-{width}x{height}.png", lambda p, w=width, h=height: png_header_only(p, w, h))
    add("fifo.png", lambda p: os.mkfifo(p))
    add("folder.png", lambda p: p.mkdir())
    add("empty.png", lambda p: p.write_bytes(b""))
    add("text.jpg", lambda p: p.write_text("not an image at all\n"))
    for extension in ("png", "jpg", "gif", "tiff", "bmp", "webp"):
        add(f"noise.{extension}", lambda p: p.write_bytes(rng.bytes(2000)))
    picture = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    for extension in ("png", "jpg"):
        whole = folder / f"whole.{extension}"
        Image.fromarray(picture).save(whole)
        data = whole.read_bytes()
        for cut in (20, len(data) // 3, len(data) // 2):
            add(f"cut-{cut}.{extension}", lambda p, d=data[:cut]: p.write_bytes(d))
        whole.unlink()
    for value in (np.nan, np.inf, -np.inf):
        floats = rng.random((32, 32)).astype(np.float32)
        floats[5, 7] = value
        add(f"float-{value}.tiff", lambda p, f=floats: Image.fromarray(f, mode="F").save(p))
    add("missing.png", lambda p: None)
    add("dev-zero.png", lambda p: p.symlink_to("/dev/zero"))
    return made


# safetensors ----------------------------------------------------------------------------

def read_safetensors_raw(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def write_safetensors_raw(path, header, body):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def nested(depth):
    return "[" * depth + "]" * depth


def _nested_blocks(depth):
    block = {"type": "ReLU"}
    for _ in range(depth):
        block = {"type": "Residual", "layers": [block]}
    return block


def safetensors_cases(folder, template):
    """{name: path} of safetensors files derived from `template` (a small model of ours)."""
    header, body = read_safetensors_raw(template)
    metadata = header["__metadata__"]
    architecture = json.loads(metadata["architecture"])
    first_linear = next(i for i, layer in enumerate(architecture) if layer["type"] == "Linear")
    made = {}

    def with_metadata(name, **changes):
        new = dict(header, __metadata__=dict(metadata, **changes))
        write_safetensors_raw(folder / name, new, body)
        made[name] = folder / name

    for name, value in (("number", "3"), ("null", "null"), ("empty", "[]"), ("numbers", "[1, 2, 3]"),
                        ("nested", nested(DEEP)), ("dict", '{"type": "Conv2d"}'), ("text", '"Conv2d"'),
                        ("broken", "[{"), ("unknown-layer", '[{"type": "Swish"}]'),
                        ("linear-first", json.dumps([{"type": "Linear", "in_features": 3, "out_features": 10}])),
                        ("huge-linear", json.dumps([{"type": "Flatten"}, {"type": "Linear", "in_features": 10 ** 6,
                                                                         "out_features": 10 ** 6}])),
                        ("inf-linear", '[{"type": "Flatten"}, {"type": "Linear", "in_features": Infinity, '
                                       '"out_features": 10}]'),
                        ("string-size", json.dumps([dict(architecture[0], kernel_size="3")] + architecture[1:])),
                        ("negative-kernel", json.dumps([dict(architecture[0], kernel_size=-3)] + architecture[1:])),
                        ("zero-stride", json.dumps([dict(architecture[0], stride=0)] + architecture[1:])),
                        ("bool-channels", json.dumps([dict(architecture[0], in_channels=True)] + architecture[1:])),
                        ("extra-argument", json.dumps([dict(architecture[0], groups=2)] + architecture[1:])),
                        ("wrong-width", json.dumps(architecture[:first_linear] + [dict(architecture[first_linear],
                                                   in_features=7)] + architecture[first_linear + 1 :])),
                        ("blocks-nested-deep", json.dumps([_nested_blocks(8)] + architecture)),
                        ("block-changes-shape", json.dumps([{"type": "Residual", "layers": [
                            {"type": "Conv2d", "in_channels": 3, "out_channels": 5, "kernel_size": 1}]}] + architecture)),
                        ("block-not-a-list", json.dumps([{"type": "Sequential", "layers": 3}] + architecture)),
                        ("grouped-mismatch", json.dumps([dict(architecture[0], groups=2)] + architecture[1:]))):
        with_metadata(f"arch-{name}.safetensors", architecture=value)
    for name, value in (("number", "3"), ("dict", '{"a": 1}'), ("nested", nested(DEEP)), ("numbers", "[1, 2]"),
                        ("too-few", json.dumps(["a", "b"])), ("broken", "[")):
        with_metadata(f"classes-{name}.safetensors", classes=value)
    for name, value in (("number", "3"), ("too-few", '["n1"]'), ("dict", "{}")):
        with_metadata(f"synsets-{name}.safetensors", synsets=value)
    for key in ("input_size", "image_size"):
        for value in ("0", "-1", "99999999", "abc", "1e3", "", "inf"):
            with_metadata(f"{key}-{value or 'empty'}.safetensors", **{key: value})
    with_metadata("image-smaller-than-input.safetensors", image_size="8")
    with_metadata("no-classes-and-too-small-an-input.safetensors", classes="null", input_size="4", image_size="8")
    with_metadata("no-format.safetensors", format="other")

    def with_tensor(name, tensor_name, **entry_changes):
        new = json.loads(json.dumps(header))
        new[tensor_name].update(entry_changes)
        write_safetensors_raw(folder / name, new, body)
        made[name] = folder / name

    some_tensor = next(k for k in header if k != "__metadata__" and not k.startswith("meta."))
    entry = header[some_tensor]
    for dtype in ("BF16", "F8_E4M3", "F8_E5M2", "U8", "BOOL", "C64", "X99"):
        with_tensor(f"dtype-{dtype}.safetensors", some_tensor, dtype=dtype)
    with_tensor("shape-huge.safetensors", some_tensor, shape=[10 ** 6, 10 ** 6])
    with_tensor("shape-negative.safetensors", some_tensor, shape=[-1, 3])
    with_tensor("shape-text.safetensors", some_tensor, shape="3")
    with_tensor("offsets-outside.safetensors", some_tensor, data_offsets=[0, 10 ** 12])
    with_tensor("offsets-reversed.safetensors", some_tensor, data_offsets=entry["data_offsets"][::-1])
    raw = template.read_bytes()
    for cut in (4, 8, 100, len(raw) // 2, len(raw) - 1):
        (folder / f"cut-{cut}.safetensors").write_bytes(raw[:cut])
        made[f"cut-{cut}.safetensors"] = folder / f"cut-{cut}.safetensors"
    (folder / "header-length.safetensors").write_bytes(struct.pack("<Q", 2 ** 60) + raw[8:])
    made["header-length.safetensors"] = folder / "header-length.safetensors"
    (folder / "header-not-json.safetensors").write_bytes(struct.pack("<Q", 5) + b"hello" + raw)
    made["header-not-json.safetensors"] = folder / "header-not-json.safetensors"
    write_safetensors_raw(folder / "header-list.safetensors", [1, 2], body)
    made["header-list.safetensors"] = folder / "header-list.safetensors"
    start, end = entry["data_offsets"]
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        poisoned = bytearray(body)
        poisoned[start : start + 4] = np.float32(value).tobytes()
        write_safetensors_raw(folder / f"weights-{name}.safetensors", header, bytes(poisoned))
        made[f"weights-{name}.safetensors"] = folder / f"weights-{name}.safetensors"
        mean_start = header["meta.mean"]["data_offsets"][0]
        poisoned = bytearray(body)
        poisoned[mean_start : mean_start + 4] = np.float32(value).tobytes()
        write_safetensors_raw(folder / f"mean-{name}.safetensors", header, bytes(poisoned))
        made[f"mean-{name}.safetensors"] = folder / f"mean-{name}.safetensors"
    rng = random.Random(7)
    for index in range(12):  # random JSON where the metadata expects strings
        value = rng.choice([rng.random() * 1e9, -rng.randint(0, 10 ** 9), None, [rng.random()], {"x": 1}, True])
        new = dict(header, __metadata__=dict(metadata, **{rng.choice(list(metadata)): value}))
        write_safetensors_raw(folder / f"metadata-random-{index}.safetensors", new, body)
        made[f"metadata-random-{index}.safetensors"] = folder / f"metadata-random-{index}.safetensors"
    return made


# .pth -----------------------------------------------------------------------------------

class _Storage:
    def __init__(self, key, count, data=b""):
        self.key, self.count, self.data = key, count, data


class _Tensor:
    def __init__(self, storage, size, stride, offset=0):
        self.storage, self.size, self.stride, self.offset = storage, size, stride, offset


class _Payload:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _pickle_state(state):
    import io

    import torch

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.count)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _Tensor):
                return (torch._utils._rebuild_tensor_v2,
                        (obj.storage, obj.offset, tuple(obj.size), tuple(obj.stride), False, OrderedDict()))
            return NotImplemented

    buffer = io.BytesIO()
    Writer(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def write_zip_pth(path, state, storages, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("archive/data.pkl", _pickle_state(state))
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.data)


def write_legacy_pth(path, state, storages):
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2), _pickle_state(state),
             pickle.dumps([s.key for s in storages], protocol=2)]
    for storage in storages:
        parts.append(struct.pack("<q", storage.count) + storage.data)
    path.write_bytes(b"".join(parts))


def _patch_declared_size(path, member, size):
    """Rewrites a zip's central directory so that `member` declares `size` bytes."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02" + b"", 0)
    while at != -1:
        name_length = struct.unpack("<H", data[at + 28 : at + 30])[0]
        if data[at + 46 : at + 46 + name_length] == member.encode():
            data[at + 24 : at + 28] = struct.pack("<I", size)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def pth_cases(folder, marker):
    """{name: path} of .pth files (zip and legacy) every reader must refuse."""
    made = {}
    small = _Storage("0", 4, np.ones(4, np.float32).tobytes())
    plain = OrderedDict([("features.0.weight", _Tensor(small, (2, 2), (2, 1)))])
    cases = {
        "payload-system": (OrderedDict([("x", _Payload(f"touch {marker}"))]), [small]),
        "payload-in-list": ([_Payload(f"touch {marker}")], [small]),
        "stride-zero-huge": (OrderedDict([("classifier.6.weight", _Tensor(small, (2_000_000, 4096), (0, 0)))]),
                             [small]),
        "stride-zero-square": (OrderedDict([("features.0.weight", _Tensor(small, (10 ** 7, 10 ** 7), (0, 0)))]),
                               [small]),
        "storage-huge-count": (OrderedDict([("features.0.weight", _Tensor(_Storage("0", 10 ** 13, small.data),
                                                                          (2, 2), (2, 1)))]), [small]),
        "tensor-outside-storage": (OrderedDict([("features.0.weight", _Tensor(small, (20, 20), (20, 1)))]), [small]),
        "negative-offset": (OrderedDict([("features.0.weight", _Tensor(small, (2,), (1,), -5))]), [small]),
        "not-a-dict": ([_Tensor(small, (2, 2), (2, 1))], [small]),
        "foreign-names": (plain, [small]),
    }
    for name, (state, storages) in cases.items():
        for layout, writer in (("zip", write_zip_pth), ("legacy", write_legacy_pth)):
            path = folder / f"{name}-{layout}.pth"
            writer(path, state, storages)
            made[path.name] = path
    bomb = folder / "bomb-zip.pth"
    write_zip_pth(bomb, plain, [small])
    _patch_declared_size(bomb, "archive/data/0", 0xFFFFFFF0)
    made[bomb.name] = bomb
    encrypted = folder / "encrypted-zip.pth"
    write_zip_pth(encrypted, plain, [small])
    data = bytearray(encrypted.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at != -1:
            data[at + flag_at] |= 1
            at = data.find(signature, at + 4)
    encrypted.write_bytes(bytes(data))
    made[encrypted.name] = encrypted
    for method, label in ((zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma")):
        path = folder / f"compression-{label}.pth"
        write_zip_pth(path, plain, [small], compression=method)
        made[path.name] = path
    good = folder / "good.pth"
    write_zip_pth(good, plain, [small])
    raw = good.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        path = folder / f"cut-{cut}-zip.pth"
        path.write_bytes(raw[:cut])
        made[path.name] = path
    good.unlink()
    (folder / "noise.pth").write_bytes(random.Random(3).randbytes(3000))
    made["noise.pth"] = folder / "noise.pth"
    return made


# ONNX -----------------------------------------------------------------------------------

def onnx_cases(folder):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)

    def graph_file(name, nodes, initializers, input_dims=(1, 3, 8, 8)):
        graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in initializers.items()])
        path = folder / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
        return path

    weight = rng.standard_normal((4, 3, 3, 3))
    conv = helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3])
    flatten = helper.make_node("Flatten", ["c"], ["f"])
    gemm = helper.make_node("Gemm", ["f", "g"], ["y"], transB=1)
    good = {"w": weight, "g": rng.standard_normal((10, 144))}
    made = {
        "conv-no-weight": graph_file("conv-no-weight", [helper.make_node("Conv", ["x"], ["c"]), flatten, gemm], good),
        "gemm-1d": graph_file("gemm-1d", [conv, flatten, gemm], dict(good, g=rng.standard_normal(144))),
        "maxpool-no-kernel": graph_file("maxpool-no-kernel", [conv, helper.make_node("MaxPool", ["c"], ["p"]),
                                                              helper.make_node("Flatten", ["p"], ["f"]), gemm], good),
        "lrn-no-size": graph_file("lrn-no-size", [conv, helper.make_node("LRN", ["c"], ["n"], alpha=1e-4),
                                                  helper.make_node("Flatten", ["n"], ["f"]), gemm], good),
        "float-constant": graph_file("float-constant", [helper.make_node("Constant", [], ["k"], value_float=2.0),
                                                        conv, flatten, gemm], good),
        "empty-graph": graph_file("empty-graph", [], {}),
        "huge-input": graph_file("huge-input", [conv, flatten, gemm], good, input_dims=(1, 3, 10 ** 6, 10 ** 6)),
        "nan-weights": graph_file("nan-weights", [conv, flatten, gemm], dict(good, w=np.full((4, 3, 3, 3), np.nan))),
        "unsupported-op": graph_file("unsupported-op", [conv, helper.make_node("Sigmoid", ["c"], ["s"]),
                                                        helper.make_node("Flatten", ["s"], ["f"]), gemm], good),
        "kernel-string": graph_file("kernel-string", [helper.make_node("Conv", ["x", "w"], ["c"], strides="ab"),
                                                      flatten, gemm], good),
        "wrong-gemm-width": graph_file("wrong-gemm-width", [conv, flatten, gemm], dict(good, g=np.ones((10, 7)))),
        "conv-3d-weight": graph_file("conv-3d-weight", [conv, flatten, gemm], dict(good, w=np.ones((4, 3, 3)))),
    }
    (folder / "noise.onnx").write_bytes(random.Random(4).randbytes(2000))
    made["noise"] = folder / "noise.onnx"
    return {path.name: path for path in made.values()}


# MatConvNet -----------------------------------------------------------------------------

def matconvnet_cases(folder):
    from scipy.io import savemat

    rng = np.random.default_rng(2)

    def conv(name, filters, biases, **extra):
        return dict({"type": "conv", "name": name, "weights": np.array([filters, biases], dtype=object),
                     "stride": 1, "pad": 0}, **extra)

    def mat(name, layers, size=8, average=None, classes=None):
        meta = {"normalization": {"imageSize": np.array([size, size, 3]),
                                  "averageImage": np.zeros(3) if average is None else average}}
        if classes is not None:
            meta["classes"] = {"description": np.array(classes, dtype=object)}
        layer_array = np.empty(len(layers), dtype=object)
        for i, layer in enumerate(layers):
            layer_array[i] = layer
        path = folder / f"{name}.mat"
        savemat(path, {"layers": layer_array, "meta": meta})
        return path

    good_conv = conv("conv1", rng.standard_normal((3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32))
    full = conv("fc", rng.standard_normal((6, 6, 4, 10)).astype(np.float32), np.zeros(10, np.float32))
    relu = {"type": "relu", "name": "relu1"}
    made = [
        mat("empty-layers", []),
        mat("conv-without-weights", [{"type": "conv", "name": "c"}, relu]),
        mat("conv-number-weights", [dict(good_conv, weights=3.0), relu, full]),
        mat("conv-no-biases", [conv("c", np.ones((3, 3, 3, 4), np.float32), np.zeros(0, np.float32)), relu, full]),
        mat("huge-image", [good_conv, relu, full], size=10 ** 7),
        mat("nan-image-size", [good_conv, relu, full], size=np.nan),
        mat("five-names-ten-outputs", [good_conv, relu, full], classes=["a", "b", "c", "d", "e"]),
        mat("nan-weights", [conv("c", np.full((3, 3, 3, 4), np.nan, np.float32), np.zeros(4, np.float32)), relu,
                            full]),
        mat("nan-average", [good_conv, relu, full], average=np.full(3, np.nan)),
        mat("unknown-layer", [good_conv, {"type": "bnorm", "name": "bn"}, full]),
        mat("wrong-fc-width", [good_conv, relu, conv("fc", np.ones((5, 5, 4, 10), np.float32),
                                                     np.zeros(10, np.float32))]),
        mat("pool-string", [good_conv, {"type": "pool", "name": "p", "pool": "big", "stride": 2}, full]),
        mat("lrn-short-param", [good_conv, {"type": "lrn", "name": "n", "param": np.array([5.0])}, full]),
    ]
    savemat(folder / "no-layers.mat", {"something": np.ones(3)})
    made.append(folder / "no-layers.mat")
    (folder / "noise.mat").write_bytes(b"MATLAB 5.0 MAT-file" + random.Random(5).randbytes(2000))
    made.append(folder / "noise.mat")
    return {path.name: path for path in made}


# arguments and outputs ------------------------------------------------------------------

BAD_NUMBERS = ("-1", "nan", "inf", "-inf", "abc", "", "1e999", "0x10")


def argument_cases(image, folder):
    """(label, argv, env) of bad arguments on the shipped model."""
    out = str(folder / "out")
    cases = []
    options = [
        (["classify", image], "--top-k", ("0", "-1", "nan", "abc", "1.5")),
        (["saliency", image, "--out", out], "--smoothgrad", ("-1", "abc", "1e9", "2.5")),
        (["saliency", image, "--out", out], "--noise", ("-0.1", "nan", "inf", "abc")),
        (["saliency", image, "--out", out], "--class", ("-1", "10", "abc", "1e3")),
        (["saliency", image, "--out", out], "--crops", ("0", "5", "abc")),
        (["saliency", image, "--out", out], "--mode", ("zeiler", "", "BACKPROP")),
        (["classmodel", "--out", out], "--lr", ("0", "-1", "nan", "inf", "abc")),
        (["classmodel", "--out", out], "--l2", ("-1", "nan", "inf")),
        (["classmodel", "--out", out], "--init-std", ("-1", "nan", "inf")),
        (["classmodel", "--out", out], "--steps", ("-1", "abc", "1e3")),
        (["classmodel", "--out", out], "--blur-every", ("-1", "x")),
        (["classmodel", "--out", out], "--jitter", ("-2", "nan")),
        (["classmodel", "--out", out], "--class", ("10", "-1")),
        (["localise", image, "--out", out], "--top-k", ("0", "-1")),
        (["localise", image, "--out", out], "--fg-quantile", ("0", "1.5", "nan")),
        (["localise", image, "--out", out], "--bg-quantile", ("1", "-0.1", "nan")),
        (["deconv", image, "--channel", "0", "--out", out], "--layer", ("99", "-99", "abc")),
        (["deconv", image, "--layer", "0", "--out", out], "--channel", ("-1", "9999")),
        (["evaluate", "--out", out], "--images", ("0", "-1", "abc")),
        (["evaluate", "--out", out], "--sanity-images", ("-1",)),
        (["evaluate", "--out", out], "--top-k", ("0",)),
        (["train", "--out", str(folder / "t.safetensors")], "--batch-size", ("0", "-1")),
        (["train", "--out", str(folder / "t.safetensors")], "--epochs", ("0", "-1")),
        (["train", "--out", str(folder / "t.safetensors")], "--lr", ("nan", "0", "-1", "inf")),
        (["train", "--out", str(folder / "t.safetensors")], "--dropout", ("1", "-0.5", "nan")),
        (["train", "--out", str(folder / "t.safetensors")], "--images", ("0",)),
        (["train", "--out", str(folder / "t.safetensors")], "--held-out", ("0", "-1")),
        (["train", "--out", str(folder / "t.safetensors")], "--weight-decay", ("nan", "-1")),
    ]
    for prefix, option, values in options:
        for value in values:
            cases.append((f"{prefix[0]} {option} {value!r}", prefix + [option, value], {}))
    cases += [
        ("localise --class abbreviation", ["localise", image, "--class", "3", "--out", out], {}),
        ("--outp abbreviation", ["saliency", image, "--outp", out], {}),
        ("unknown command", ["explain", image], {}),
        ("no command", [], {}),
        ("unknown backend", ["classify", image, "--backend", "tpu"], {}),
        ("bad backend environment", ["classify", image], {"DEEPINSIDE_BACKEND": "bogus"}),
        ("bad image limit environment", ["classify", image], {"DEEPINSIDE_MAX_IMAGE_PIXELS": "abc"}),
        ("negative image limit", ["classify", image], {"DEEPINSIDE_MAX_IMAGE_PIXELS": "-5"}),
        ("tiny parameter limit", ["classify", image], {"DEEPINSIDE_MAX_PARAMETERS": "10"}),
        ("tiny image limit", ["classify", image], {"DEEPINSIDE_MAX_IMAGE_PIXELS": "10"}),
        ("ilsvrc missing folder", ["evaluate", "--ilsvrc", str(folder / "nowhere"), "--out", out], {}),
    ]
    return cases


def output_cases(image, folder, shipped):
    """(label, argv, paths that must stay as they are) for bad output paths."""
    a_file = folder / "existing-file"
    a_file.write_text("keep me\n")
    full = folder / "full-folder"
    full.mkdir()
    (full / "keep.txt").write_text("keep me\n")
    existing_model = folder / "existing.safetensors"
    existing_model.write_bytes(shipped.read_bytes())
    long_name = str(folder / ("x" * 300))
    cases = []
    for command in (["saliency", image], ["classmodel", "--steps", "1"], ["localise", image], ["compare", image],
                    ["deconv", image, "--layer", "0", "--channel", "0"], ["classify", image], ["demo"]):
        for label, out in (("a file", str(a_file)), ("a full folder", str(full)), ("empty", ""),
                           ("too long", long_name), ("under a file", str(a_file / "out"))):
            cases.append((f"{command[0]} --out {label}", command + ["--out", out], [a_file, full]))
    for label, target in (("existing", existing_model), ("a folder", full), ("not safetensors", folder / "m.bin"),
                          ("missing folder", folder / "nowhere" / "m.safetensors"), ("shipped", shipped),
                          ("too long", long_name + ".safetensors")):
        cases.append((f"convert to {label}", ["convert", str(shipped), str(target)], [existing_model, full, shipped]))
        cases.append((f"train to {label}", ["train", "--images", "8", "--epochs", "1", "--out", str(target)],
                      [existing_model, full, shipped]))
    return cases
