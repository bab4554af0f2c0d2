"""Importers, each on a file written in the published layout with random weights, against
an independent forward pass and input gradient."""
import os

import numpy as np
import pytest
import torch
from scipy.io import savemat

from deepinside import engine
from deepinside import models
from helpers import relative_error
from deepinside.cli import main


def ours(model, x, probe):
    """Forward output and d<output, probe>/dx through the engine, in float32."""
    image = engine.Tensor(x.astype(np.float32), requires_grad=True)
    out = model.net(image)
    return out.numpy(), engine.grad(out, [image], grad_output=probe.astype(np.float32))[0]


def reference(function, x, probe):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = function(xt)
    (gradient,) = torch.autograd.grad(out, xt, torch.tensor(probe, dtype=torch.float64))
    return out.detach().numpy(), gradient.numpy()


def assert_matches(model, function, x, classes, seed=0):
    probe = np.random.default_rng(seed).standard_normal((x.shape[0], classes))
    out, gradient = ours(model, x, probe)
    expected_out, expected_gradient = reference(function, x, probe)
    assert relative_error(out, expected_out) < 1e-4
    assert relative_error(gradient, expected_gradient) < 1e-4


# torchvision ---------------------------------------------------------------------------

class TorchvisionAlexNet(torch.nn.Module):
    """torchvision.models.AlexNet's module tree, attribute for attribute."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 64, 11, 4, 2), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(3, 2),
            torch.nn.Conv2d(64, 192, 5, padding=2), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(3, 2),
            torch.nn.Conv2d(192, 384, 3, padding=1), torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(384, 256, 3, padding=1), torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(3, 2))
        self.avgpool = torch.nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = torch.nn.Sequential(
            torch.nn.Dropout(), torch.nn.Linear(256 * 36, 4096), torch.nn.ReLU(inplace=True),
            torch.nn.Dropout(), torch.nn.Linear(4096, 4096), torch.nn.ReLU(inplace=True),
            torch.nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class TorchvisionVGG16(torch.nn.Module):
    """torchvision.models.vgg16's module tree (configuration D, no batch norm)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, channels = [], 3
        for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if item == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(channels, item, 3, padding=1), torch.nn.ReLU(inplace=True)]
                channels = item
        self.features = torch.nn.Sequential(*layers)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(512 * 49, 4096), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(4096, 4096), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.mark.parametrize("tree, size, legacy", [(TorchvisionAlexNet, 67, False), (TorchvisionVGG16, 32, False),
                                                (TorchvisionAlexNet, 67, True)])
def test_torchvision_pth(tmp_path, tree, size, legacy):
    torch.manual_seed(0)
    net = tree(num_classes=10).eval()
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    model = models.load(path)
    assert model.input_size == 224 and np.allclose(model.mean, [123.675, 116.28, 103.53])
    x = np.random.default_rng(1).standard_normal((2, 3, size, size))
    assert_matches(model, net.double(), x, 10)


def test_torchvision_safetensors_and_arch_argument(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(1)
    net = TorchvisionAlexNet(num_classes=5).eval()
    save_file(net.state_dict(), tmp_path / "alexnet.safetensors")
    model = models.load(tmp_path / "alexnet.safetensors", arch="alexnet")
    assert_matches(model, net.double(), np.random.default_rng(2).standard_normal((1, 3, 64, 64)), 5)
    with pytest.raises(models.ModelFileError, match="unknown torchvision architecture 'resnet'"):
        models.load(tmp_path / "alexnet.safetensors", arch="resnet")


def test_forbidden_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"features.0.weight": torch.zeros(1), "payload": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(models.ModelFileError, match=r"refused: the pickle asks for (posix|os)\.system"):
        models.load(tmp_path / "evil.pth")
    assert not marker.exists()


def test_truncated_and_foreign_pth_files(tmp_path):
    torch.manual_seed(0)
    torch.save(TorchvisionAlexNet(num_classes=3).state_dict(), tmp_path / "full.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(models.ModelFileError, match="cut.pth"):
        models.load(tmp_path / "cut.pth")
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(models.ModelFileError, match="neither torchvision's AlexNet nor VGG-16"):
        models.load(tmp_path / "other.pth")


def test_class_names_from_a_file(tmp_path):
    torch.manual_seed(0)
    torch.save(TorchvisionAlexNet(num_classes=3).state_dict(), tmp_path / "net.pth")
    (tmp_path / "names.txt").write_text("tench\ngoldfish\ngreat white shark\n")
    assert models.load(tmp_path / "net.pth", classes=tmp_path / "names.txt").classes[2] == "great white shark"
    (tmp_path / "short.txt").write_text("tench\n")
    with pytest.raises(models.ModelFileError, match="1 class names for a network with 3 outputs"):
        models.load(tmp_path / "net.pth", classes=tmp_path / "short.txt")


def test_unknown_format(tmp_path):
    (tmp_path / "net.h5").write_bytes(b"HDF")
    with pytest.raises(models.ModelFileError, match="unknown weight format '.h5'"):
        models.load(tmp_path / "net.h5")


# ONNX ----------------------------------------------------------------------------------

def onnx_chain(tmp_path, extra_op=None):
    """Conv-Relu-LRN-MaxPool-Conv-Relu-Flatten-Gemm-Relu-Dropout-MatMul-Add-Softmax, random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    r = np.random.default_rng(3)
    w1, b1 = r.standard_normal((4, 3, 3, 3)) * 0.3, r.standard_normal(4) * 0.1
    w2, b2 = r.standard_normal((5, 4, 3, 3)) * 0.3, r.standard_normal(5) * 0.1
    w3, b3 = r.standard_normal((7, 5 * 4 * 4)) * 0.2, r.standard_normal(7) * 0.1
    w4, b4 = r.standard_normal((7, 6)) * 0.3, r.standard_normal(6) * 0.1
    arrays = dict(w1=w1, b1=b1, w2=w2, b2=b2, w3=w3, b3=b3, w4=w4, b4=b4)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("LRN", ["r1"], ["n1"], size=3, alpha=0.3, beta=0.75, bias=1.5),
        helper.make_node("MaxPool", ["n1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
        helper.make_node("Relu", ["g"], ["r3"]),
        helper.make_node("Dropout", ["r3"], ["d"]),
        helper.make_node("MatMul", ["d", "w4"], ["m"]),
        helper.make_node("Add", ["m", "b4"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    if extra_op:
        nodes.insert(2, helper.make_node(extra_op, ["r1"], ["r1b"]))
        nodes[3].input[0] = "r1b"
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 15, 15])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 6])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in arrays.items()])
    path = tmp_path / "chain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path, arrays, graph


def test_onnx_chain_against_torch(tmp_path):
    # onnx.reference's LRN loops over the batch instead of the channels (onnx 1.23), so
    # the graph is written out by hand in torch instead.
    path, a, _ = onnx_chain(tmp_path)
    model = models.load(path)
    assert model.input_size == 15 and len(model.classes) == 6
    x = np.random.default_rng(4).standard_normal((2, 3, 15, 15))
    F = torch.nn.functional
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in a.items()}

    def by_hand(v):  # the graph written out in torch, without the final softmax
        v = F.local_response_norm(F.relu(F.conv2d(v, t["w1"], t["b1"], padding=1)), 3, 0.3, 0.75, 1.5)
        v = F.relu(F.conv2d(F.max_pool2d(v, 3, 2, 1), t["w2"], t["b2"], stride=2, padding=1))
        v = F.relu(v.flatten(1) @ t["w3"].T + t["b3"])
        return v @ t["w4"] + t["b4"]

    assert_matches(model, by_hand, x, 6)


def test_onnx_unsupported_ops_are_listed(tmp_path):
    path, _, _ = onnx_chain(tmp_path, extra_op="Sigmoid")
    with pytest.raises(models.ModelFileError, match="unsupported ONNX operators: Sigmoid"):
        models.load(path)


# MatConvNet ----------------------------------------------------------------------------

def matconvnet_file(path, average_image):
    """A small CNN-F in the layout of imagenet-vgg-f.mat (SimpleNN, meta.normalization, meta.classes)."""
    r = np.random.default_rng(5)

    def conv(name, h, cin, cout, stride, pad):
        return {"type": "conv", "name": name, "weights": np.array([r.standard_normal((h, h, cin, cout)).astype(np.float32) * 0.2,
                                                                   r.standard_normal(cout).astype(np.float32) * 0.1], dtype=object),
                "stride": np.array([stride, stride], float), "pad": np.array(pad, float)}

    layers = [
        conv("conv1", 11, 3, 8, 4, [0, 0, 0, 0]), {"type": "relu", "name": "relu1"},
        {"type": "lrn", "name": "norm1", "param": np.array([5, 1, 2e-2, 0.75])},
        {"type": "pool", "name": "pool1", "method": "max", "pool": np.array([3, 3.]), "stride": np.array([2, 2.]),
         "pad": np.array([0, 1, 0, 1.])},
        conv("conv2", 5, 8, 12, 1, [2, 2, 2, 2]), {"type": "relu", "name": "relu2"},
        {"type": "pool", "name": "pool2", "method": "max", "pool": np.array([3, 3.]), "stride": np.array([2, 2.]),
         "pad": np.array([0, 1, 0, 1.])},
        conv("fc6", 3, 12, 16, 1, [0, 0, 0, 0]), {"type": "relu", "name": "relu6"},
        {"type": "dropout", "name": "drop6", "rate": 0.5},
        conv("fc8", 1, 16, 4, 1, [0, 0, 0, 0]), {"type": "softmax", "name": "prob"},
    ]
    cell = np.empty(len(layers), dtype=object)
    cell[:] = layers
    meta = {"normalization": {"averageImage": average_image, "imageSize": np.array([59, 59, 3, 1.])},
            "classes": {"name": np.array(["n01", "n02", "n03", "n04"], dtype=object),
                        "description": np.array(["tench", "goldfish", "shark", "ray"], dtype=object)}}
    savemat(path, {"layers": cell, "meta": meta})
    return layers


def matconvnet_forward(layers, x):
    """MatConvNet's semantics written out in torch: correlation with HxWxCinxCout filters,
    [top bottom left right] padding, -inf pool padding, vl_nnnormalize's LRN."""
    F = torch.nn.functional
    for layer in layers:
        if layer["type"] == "conv":
            w = torch.tensor(layer["weights"][0], dtype=torch.float64).permute(3, 2, 0, 1)
            t, b, l, r = (int(p) for p in layer["pad"])
            x = F.conv2d(F.pad(x, (l, r, t, b)), w, torch.tensor(layer["weights"][1], dtype=torch.float64),
                         stride=int(layer["stride"][0]))
        elif layer["type"] == "relu":
            x = F.relu(x)
        elif layer["type"] == "pool":
            t, b, l, r = (int(p) for p in layer["pad"])
            x = F.max_pool2d(F.pad(x, (l, r, t, b), value=-float("inf")), int(layer["pool"][0]), int(layer["stride"][0]))
        elif layer["type"] == "lrn":
            n, kappa, alpha, beta = layer["param"]
            squares = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, int(n) // 2, int(n) // 2)).squeeze(1)
            window = sum(squares[:, i : i + x.shape[1]] for i in range(int(n)))
            x = x / (kappa + alpha * window) ** beta
    return x.flatten(1)


def test_matconvnet_cnn_f_layout(tmp_path):
    average = np.random.default_rng(6).random((59, 59, 3)).astype(np.float32) * 255
    layers = matconvnet_file(tmp_path / "vgg-f.mat", average)
    model = models.load(tmp_path / "vgg-f.mat")
    assert model.classes == ["tench", "goldfish", "shark", "ray"] and model.synsets == ["n01", "n02", "n03", "n04"]
    assert model.input_size == 59 and np.allclose(model.mean, average.transpose(2, 0, 1))
    kinds = [type(layer).__name__ for layer in model.net]
    assert kinds.count("Linear") == 2 and "Flatten" in kinds and kinds.count("MaxPool2d") == 2
    x = np.random.default_rng(7).standard_normal((2, 3, 59, 59)) * 50
    assert_matches(model, lambda v: matconvnet_forward(layers, v), x, 4)


def test_matconvnet_per_channel_mean_and_refusals(tmp_path):
    matconvnet_file(tmp_path / "net.mat", np.array([120.0, 110.0, 100.0]))
    assert np.allclose(models.load(tmp_path / "net.mat").mean, [120, 110, 100])
    savemat(tmp_path / "bad.mat", {"layers": np.array([{"type": "bnorm", "name": "bn1"}], dtype=object)})
    with pytest.raises(models.ModelFileError, match="layer bn1 has type 'bnorm'"):
        models.load(tmp_path / "bad.mat")
    savemat(tmp_path / "plain.mat", {"x": np.ones(3)})
    with pytest.raises(models.ModelFileError, match="not a MatConvNet SimpleNN file"):
        models.load(tmp_path / "plain.mat")


# deepinside convert --------------------------------------------------------------------

def test_convert_writes_our_format_and_nothing_on_failure(tmp_path, capsys):
    matconvnet_file(tmp_path / "net.mat", np.array([120.0, 110.0, 100.0]))
    assert main(["convert", str(tmp_path / "net.mat"), str(tmp_path / "net.safetensors")]) == 0
    original, converted = models.load(tmp_path / "net.mat"), models.load(tmp_path / "net.safetensors")
    assert converted.classes == original.classes and converted.synsets == original.synsets
    x = engine.Tensor(np.random.default_rng(8).standard_normal((1, 3, 59, 59)).astype(np.float32))
    with engine.no_grad():
        assert np.array_equal(original.net(x).numpy(), converted.net(x).numpy())
    assert main(["convert", str(tmp_path / "net.mat"), str(tmp_path / "out.safetensors"),
                 "--classes", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err and not (tmp_path / "out.safetensors").exists()
    assert main(["convert", str(tmp_path / "net.mat"), str(tmp_path / "out.bin")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
