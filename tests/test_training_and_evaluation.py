"""Training on generated data, and the evaluation on generated data with ground truth,
end to end on small settings."""
import json

import numpy as np
import pytest

from deepinside import models
from deepinside.models.data import CLASSES
from deepinside.cli import main


def test_train_writes_a_loadable_model_and_logs_every_epoch(tmp_path, capsys):
    out = tmp_path / "tiny.safetensors"
    assert main(["train", "--out", str(out), "--images", "64", "--epochs", "2", "--batch-size", "32",
                 "--held-out", "50"]) == 0
    log = capsys.readouterr().out
    assert "epoch  1/2" in log and "epoch  2/2" in log and "held-out accuracy 0." in log
    assert "generated 64 training and 50 held-out images" in log and "on 50 images" in log
    model = models.load(out)
    assert model.classes == list(CLASSES) and model.input_size == 96 and model.image_size == 112
    assert model.net.spec() == models.shapes_net(dropout=0.1).spec() and (model.std > 1).all()


@pytest.mark.parametrize("mode", ("backprop", "deconvnet", "guided"))
def test_the_trained_batchnorm_net_folds_into_the_shipped_pattern(rng, mode):
    """What `train` writes: the BatchNorm twin folded. Same outputs, same input gradients
    in every mode, and exactly the shipped net's layers."""
    from deepinside import engine
    from deepinside.models.train import default_net
    from helpers import relative_error
    net = default_net(seed=5, batchnorm=True).to(np.float64).train()
    optimiser = engine.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):  # moves gamma, beta and the running statistics away from 1 and 0
        loss = engine.functional.cross_entropy(net(engine.Tensor(rng.standard_normal((8, 3, 96, 96)) * 2 + 1)),
                                               rng.integers(0, 10, 8))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    folded = engine.nn.fold_batchnorm(net)
    assert folded.spec() == models.shapes_net(dropout=0.1).spec()
    x = rng.standard_normal((2, 3, 96, 96))
    seed = rng.standard_normal((2, 10))
    results = []
    for model in (net, folded):
        image = engine.Tensor(x, requires_grad=True)
        out = model(image)
        results.append((out.data, engine.grad(out, [image], grad_output=seed, mode=mode)[0]))
    assert np.abs(results[0][1]).max() > 0
    assert relative_error(results[1][0], results[0][0]) < 1e-10
    assert relative_error(results[1][1], results[0][1]) < 1e-10


def test_pixel_statistics_are_exact_where_a_float32_mean_stalls(rng):
    from deepinside.models.train import pixel_statistics
    # 2^25 pixels per channel: a float32 running sum of values near 200 stops growing there.
    images = rng.integers(150, 256, (2048, 128, 128, 3), dtype=np.uint8)
    images[..., 1] //= 2
    mean, std = pixel_statistics(images)
    pixels = images.reshape(-1, 3)
    expected_mean = np.array([pixels[:, c].mean(dtype=np.float64) for c in range(3)])
    expected_std = np.array([pixels[:, c].std(dtype=np.float64) for c in range(3)])
    assert np.allclose(mean, expected_mean, rtol=1e-6) and np.allclose(std, expected_std, rtol=1e-5)


def test_training_is_reproducible_from_its_seed(tmp_path):
    from deepinside.models.train import train
    from deepinside.models.weights import read_safetensors
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(tmp_path / f"{name}.safetensors", images=96, epochs=2, batch_size=32, warmup_steps=2, seed=seed,
              held_out=40, log=lambda line: None, progress=False)
        runs.append(read_safetensors(str(tmp_path / f"{name}.safetensors"))[1])
    same, other = runs[0], runs[1]
    assert same.keys() == other.keys() and all(np.array_equal(same[k], other[k]) for k in same)
    assert any(not np.array_equal(runs[0][k], runs[2][k]) for k in same)


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    from deepinside import engine
    from deepinside.engine import functional as F
    from deepinside.models.data import generate
    from deepinside.models.train import centre_crops, default_net, to_batch
    images, labels, _, _ = generate(32, seed=9)
    pixels = images.reshape(-1, 3).astype(np.float32)
    x = engine.Tensor(to_batch(centre_crops(images), pixels.mean(axis=0), pixels.std(axis=0)))
    net = default_net(0).eval()  # no dropout: a deterministic objective
    optimiser = engine.optim.SGD(net.parameters(), lr=0.002, momentum=0.9)
    losses = []
    for _ in range(80):  # the score layer starts small: the first steps move it, then the rest
        loss = F.cross_entropy(net(x), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.2 * losses[0]


def test_the_centred_baseline_is_the_average_training_object_box():
    """evaluate's constant box is what its definition gives: the average object width and
    height of 500 training images, centred; and it is no degenerate box."""
    from deepinside.models.data import IMAGE_SIZE
    from deepinside.viz.evaluate import CENTRED_BOX, average_box
    assert CENTRED_BOX == average_box(IMAGE_SIZE)
    x0, y0, x1, y1 = CENTRED_BOX
    assert 0 < x0 < x1 < IMAGE_SIZE and 0 < y0 < y1 < IMAGE_SIZE and abs((x0 + x1) - IMAGE_SIZE) <= 1


def test_evaluate_on_generated_images(tmp_path, capsys):
    from deepinside import engine
    engine.nn.manual_seed(0)
    models.save(tmp_path / "net.safetensors", models.shapes_net(), classes=list(CLASSES), input_size=96,
                image_size=112, mean=[120, 115, 100], std=[60, 60, 60])
    assert main(["evaluate", "--model", str(tmp_path / "net.safetensors"), "--images", "2", "--sanity-images", "2",
                 "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    methods = {row["method"] for row in summary["methods"]}
    assert "whole image" in methods and "centred box of the average object size" in methods
    for mode in ("backprop", "deconvnet", "guided"):
        for crops in ("1 crop", "10 crops"):
            assert f"paper: GMM + GraphCut ({mode}, {crops})" in methods
            assert f"thresholded saliency box ({mode}, {crops})" in methods
    for row in summary["methods"]:
        assert 0 <= row["top1_localisation_error"] <= 1 and row["gt_known_localisation_error"] <= row["top1_localisation_error"]
    assert len(summary["sanity_check"]) == 8 and (tmp_path / "out" / "sanity.png").exists()
    assert "| method |" in (tmp_path / "out" / "table.md").read_text()
