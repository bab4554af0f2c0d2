"""The paper's networks and the weight files."""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

from deepinside import engine
from deepinside import models
from deepinside.engine import Tensor, nn


def parameter_count(net):
    return sum(p.data.size for p in net.parameters())


def test_cnn_f_has_the_published_shape_and_parameter_count():
    net = models.cnn_f()
    assert parameter_count(net) == 60_834_536
    kinds = [type(layer).__name__ for layer in net]
    assert kinds.count("Conv2d") == 5 and kinds.count("Linear") == 3 and kinds.count("MaxPool2d") == 3
    assert kinds.count("LocalResponseNorm") == 2 and kinds.count("Dropout") == 2
    assert [layer.out_channels for layer in net if isinstance(layer, nn.Conv2d)] == [64, 256, 256, 256, 256]
    assert net[0].kernel_size == 11 and net[0].stride == 4
    with engine.no_grad():
        features = net[:15](Tensor(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)))
    assert features.shape == (1, 256, 6, 6) and net[16].in_features == 9216
    assert isinstance(net[14], nn.MaxPool2d) and isinstance(net[15], nn.Flatten)


def test_cnn_f_scales_with_width_and_input_size():
    net = models.cnn_f(num_classes=10, width=0.25, input_size=96)
    assert [layer.out_channels for layer in net if isinstance(layer, nn.Conv2d)] == [16, 64, 64, 64, 64]
    with engine.no_grad():
        assert net.eval()(Tensor(np.ones((2, 3, 96, 96), np.float32))).shape == (2, 10)
    with pytest.raises(ValueError, match="too small"):
        models.cnn_f(input_size=40)


def test_vgg16_matches_torchvision_layer_order_and_count():
    net = models.vgg16()
    assert parameter_count(net) == 138_357_544
    convs = [i for i, layer in enumerate(net) if isinstance(layer, nn.Conv2d)]
    # torchvision.models.vgg16().features holds its 13 convolutions at these indices.
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    linears = [layer for layer in net if isinstance(layer, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(25088, 4096), (4096, 4096), (4096, 1000)]


def small_model_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.LocalResponseNorm(3),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * 4 * 4, 3))


def test_weight_file_round_trip(tmp_path):
    net = small_model_net()
    path = tmp_path / "model.safetensors"
    mean = np.array([120.0, 115.0, 100.0], np.float32)
    models.save(path, net, classes=["disc", "ring", "star"], input_size=8, image_size=10, mean=mean)
    model = models.load(path)
    assert model.classes == ["disc", "ring", "star"] and model.input_size == 8 and model.image_size == 10
    assert np.array_equal(model.mean, mean)
    assert model.net.spec() == net.spec() and not model.net[5].training
    for name, value in net.state_dict().items():
        assert np.array_equal(model.net.state_dict()[name], value)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    with engine.no_grad():
        assert np.array_equal(model.net(x).data, net.eval()(x).data)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]  # no temporary file left


def rewrite(path, tensors=None, metadata=None, **changes):
    """Writes a copy of a valid file with some tensors or metadata changed."""
    from safetensors import safe_open
    with safe_open(path, framework="numpy") as handle:
        original_metadata = dict(handle.metadata())
        original = {k: handle.get_tensor(k) for k in handle.keys()}
    original.update(tensors or {})
    for name in changes.get("drop", ()):
        del original[name]
    original_metadata.update(metadata or {})
    out = path.parent / "changed.safetensors"
    save_file(original, out, metadata=original_metadata)
    return out


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.safetensors"
    models.save(path, small_model_net(), classes=["a", "b", "c"], input_size=8)
    return path


def test_refuses_a_missing_file(tmp_path):
    with pytest.raises(models.ModelFileError, match="no such weight file"):
        models.load(tmp_path / "absent.safetensors")


def test_refuses_a_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) - 100])
    with pytest.raises(models.ModelFileError, match="truncated"):
        models.load(saved)


def test_refuses_a_file_that_is_not_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not a weight file")
    with pytest.raises(models.ModelFileError, match="not a safetensors file"):
        models.load(path)


def test_refuses_a_shape_mismatch_naming_the_tensor(saved):
    bad = rewrite(saved, tensors={"6.weight": np.zeros((3, 63), np.float32)})
    with pytest.raises(models.ModelFileError, match=r"tensor '6.weight' is float32\[3, 63\].*float32\[3, 64\]"):
        models.load(bad)


def test_refuses_a_dtype_mismatch(saved):
    bad = rewrite(saved, tensors={"0.bias": np.zeros(4, np.float64)})
    with pytest.raises(models.ModelFileError, match=r"tensor '0.bias' is float64\[4\]"):
        models.load(bad)


def test_refuses_non_finite_weights(saved):
    weights = np.ones((4, 3, 3, 3), np.float32)
    weights[1, 2, 0, 0] = np.nan
    with pytest.raises(models.ModelFileError, match="tensor '0.weight' holds non-finite values"):
        models.load(rewrite(saved, tensors={"0.weight": weights}))


def test_refuses_missing_and_extra_tensors(saved):
    with pytest.raises(models.ModelFileError, match="tensor '6.bias' is missing"):
        models.load(rewrite(saved, drop=["6.bias"]))
    with pytest.raises(models.ModelFileError, match="tensor '9.weight' belongs to no layer"):
        models.load(rewrite(saved, tensors={"9.weight": np.ones(2, np.float32)}))


def test_refuses_an_unknown_layer(saved):
    specs = [{"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
             {"type": "Swish"}]
    with pytest.raises(models.ModelFileError, match="unknown layer type 'Swish' at position 1"):
        models.load(rewrite(saved, metadata={"architecture": json.dumps(specs)}))


def test_refuses_class_names_that_do_not_match_the_outputs(saved):
    with pytest.raises(models.ModelFileError, match="2 class names for a network with 3 outputs"):
        models.load(rewrite(saved, metadata={"classes": json.dumps(["a", "b"])}))


def test_refuses_a_foreign_safetensors_file(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": np.ones(3, np.float32)}, path)
    with pytest.raises(models.ModelFileError, match="match neither torchvision's AlexNet nor VGG-16"):
        models.load(path)


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="the mean must be 3 finite values"):
        models.save(tmp_path / "model.safetensors", small_model_net(), mean=np.zeros(4))
    assert os.listdir(tmp_path) == []
