"""Images, crops and saliency maps."""
import numpy as np
import pytest
from PIL import Image

from deepinside import engine
from deepinside import models
from deepinside import viz
from deepinside.engine import nn
from helpers import relative_error
from torch_reference import torch_input_gradient, torch_twin


def test_load_image_converts_modes_and_applies_exif_orientation(tmp_path):
    rgb = (np.random.default_rng(0).random((6, 9, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(viz.load_image(tmp_path / "rgb.png"), rgb.astype(np.float32))
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    gray = viz.load_image(tmp_path / "gray.png")
    assert gray.shape == (6, 9, 3) and np.array_equal(gray[..., 1], rgb[..., 0])
    rotated = Image.fromarray(rgb)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    assert viz.load_image(tmp_path / "rotated.jpg").shape == (9, 6, 3)


def test_load_image_refuses_unreadable_files(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(viz.ImageError, match="not a readable image"):
        viz.load_image(tmp_path / "notes.png")
    with pytest.raises(viz.ImageError, match="absent.png: no such image file"):
        viz.load_image(tmp_path / "absent.png")


def test_load_image_refuses_what_would_exhaust_memory_or_hang(tmp_path, monkeypatch):
    import os
    from PIL import Image
    Image.fromarray(np.zeros((1, 40), np.uint8)).save(tmp_path / "thin.png")
    with pytest.raises(viz.ImageError, match="40x1 has a long side more than 16 times its short side"):
        viz.load_image(tmp_path / "thin.png")
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setenv("DEEPINSIDE_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(viz.ImageError, match="40x30 is more than 1000 pixels"):
        viz.load_image(tmp_path / "big.png")
    monkeypatch.delenv("DEEPINSIDE_MAX_IMAGE_PIXELS")
    assert viz.load_image(tmp_path / "big.png").shape == (30, 40, 3)
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block for ever
    with pytest.raises(viz.ImageError, match="pipe.png: is a special file"):
        viz.load_image(tmp_path / "pipe.png")
    with pytest.raises(viz.ImageError, match="is a folder"):
        viz.load_image(tmp_path)
    values = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    values[3, 4] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tiff")
    with pytest.raises(viz.ImageError, match="nan.tiff: the image holds NaN or infinite values"):
        viz.load_image(tmp_path / "nan.tiff")
    values[3, 4] = 0.5
    Image.fromarray(values, mode="F").save(tmp_path / "float.tiff")
    loaded = viz.load_image(tmp_path / "float.tiff")
    assert np.allclose(loaded[..., 0], values * 255, atol=1e-3)


def linear_model(size, classes, seed=0):
    engine.nn.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes)).eval()
    return models.Model(net=net, classes=[str(i) for i in range(classes)], input_size=size,
                        image_size=size + 3, mean=np.array([10.0, 20.0, 30.0], np.float32))


def test_single_crop_saliency_matches_torch():
    engine.nn.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 6)).eval()
    model = models.Model(net=net, classes=list("abcdef"), input_size=12, image_size=16,
                         mean=np.array([100.0, 110.0, 120.0], np.float32))
    image = (np.random.default_rng(3).random((16, 20, 3)) * 255).astype(np.float32)
    for mode in engine.MODES:
        saliency_map = viz.saliency(model, image, class_index=2, mode=mode)
        assert saliency_map.shape == (16, 20)
        crop = image[2:14, 4:16].transpose(2, 0, 1)[None] - model.mean.reshape(1, 3, 1, 1)
        seed = np.zeros((1, 6))
        seed[0, 2] = 1
        _, gradient = torch_input_gradient(torch_twin(net), crop, seed, mode)
        expected = np.zeros((16, 20))
        expected[2:14, 4:16] = np.abs(gradient[0]).max(axis=0)
        assert relative_error(saliency_map, expected) < 1e-4, mode


@pytest.mark.parametrize("slice_bytes", [32 << 20, 1], ids=["the crops in one pass", "a pass per crop"])
def test_ten_crop_saliency_geometry_on_a_linear_model(monkeypatch, slice_bytes):
    """For S_c = w_c . I + b_c the gradient of every crop is w_c: the 10-crop map is, at
    each pixel, the mean of max_channel |w_c| over the crops covering it, read mirrored in
    the mirrored crops; the same whether the crops run in one batch or in slices."""
    import sys
    saliency_module = sys.modules["deepinside.viz.saliency"]
    monkeypatch.setattr(saliency_module, "FRESH_PAGES_BYTES", slice_bytes)
    size, classes = 5, 3
    model = linear_model(size, classes)
    assert len(saliency_module.batch_slices(model, np.zeros((10, 3, size, size), np.float32))) == (
        1 if slice_bytes > 1 else 10)
    image = np.random.default_rng(1).random((8, 7, 3)).astype(np.float32) * 255
    model.image_size = 7
    weight_map = np.abs(model.net[1].weight.data[1].reshape(3, size, size)).max(axis=0)
    total, count = np.zeros((8, 7)), np.zeros((8, 7))
    for top, left in [(0, 0), (0, 2), (3, 0), (3, 2), (1, 1)]:
        for flipped in (weight_map, weight_map[:, ::-1]):
            total[top : top + size, left : left + size] += flipped
            count[top : top + size, left : left + size] += 1
    saliency_map = viz.saliency(model, image, class_index=1, crops=10)
    assert relative_error(saliency_map, total / count) < 1e-6
    assert count.min() > 0  # on this geometry every pixel is covered


def test_crops_in_slices_choose_the_same_classes_and_maps(monkeypatch):
    """The top classes come from the scores of all crops, whichever slices they ran in."""
    import sys
    saliency_module = sys.modules["deepinside.viz.saliency"]
    model = linear_model(5, 4)
    image = np.random.default_rng(2).random((8, 7, 3)).astype(np.float32) * 255
    model.image_size = 7
    results = []
    for slice_bytes in (32 << 20, 1):
        monkeypatch.setattr(saliency_module, "FRESH_PAGES_BYTES", slice_bytes)
        results.append(viz.saliency_maps(model, image, crops=10, top_k=3))
    (maps, classes, scores), (sliced_maps, sliced_classes, sliced_scores) = results
    assert sliced_classes == classes and len(set(classes)) == 3
    assert relative_error(sliced_scores, scores) < 1e-6 and relative_error(sliced_maps, maps) < 1e-6


def test_saliency_refuses_an_unknown_class():
    model = linear_model(4, 3)
    with pytest.raises(ValueError, match="class index 3 is out of range: the model has 3 classes"):
        viz.saliency(model, np.ones((4, 4, 3), np.float32), class_index=3)


def test_heatmap_and_overlay_shapes():
    values = np.random.default_rng(0).random((5, 6))
    assert viz.heatmap(values).shape == (5, 6, 3) and viz.heatmap(values).dtype == np.uint8
    assert viz.overlay(np.zeros((5, 6, 3)), values).shape == (5, 6, 3)


@pytest.mark.parametrize("extension", ["jpg", "tiff", "webp", "bmp"])
def test_load_image_reads_common_formats(tmp_path, extension):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[:, :5] = (200, 30, 40)
    rgb[:, 5:] = (20, 160, 220)
    Image.fromarray(rgb).save(tmp_path / f"image.{extension}", **({"quality": 100} if extension in ("jpg", "webp") else {}))
    loaded = viz.load_image(tmp_path / f"image.{extension}")
    assert loaded.shape == (8, 10, 3) and np.abs(loaded[:, 1] - rgb[:, 1]).max() < 12


def test_load_image_converts_palette_rgba_cmyk_16bit_and_gif(tmp_path):
    rgb = (np.random.default_rng(2).random((6, 7, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert viz.load_image(tmp_path / "palette.png").shape == (6, 7, 3)
    rgba = np.dstack([rgb, np.full((6, 7), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # one transparent pixel, composited on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    loaded = viz.load_image(tmp_path / "rgba.png")
    assert np.array_equal(loaded[0, 0], [255, 255, 255]) and np.array_equal(loaded[1:, 1:], rgb[1:, 1:])
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert np.abs(viz.load_image(tmp_path / "cmyk.jpg") - rgb).mean() < 10
    deep = (np.arange(42).reshape(6, 7) * 1500).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    loaded = viz.load_image(tmp_path / "deep.png")
    assert loaded.shape == (6, 7, 3) and abs(loaded[-1, -1, 0] - 41 * 1500 / 65535 * 255) < 1
    frames = [Image.fromarray(np.full((5, 5, 3), value, np.uint8)) for value in (10, 240)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert viz.load_image(tmp_path / "anim.gif").mean() < 20  # the first frame


def test_load_image_refuses_decompression_bombs(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(viz.ImageError, match="decompression bomb"):
        viz.load_image(tmp_path / "big.png")


def test_montage_tiles_images_in_rows():
    images = [np.full((4, 5, 3), value, np.float32) for value in (0, 50, 100)]
    sheet = viz.montage(images, columns=2, gap=1)
    assert sheet.shape == (9, 11, 3)
    assert sheet[0, 0, 0] == 0 and sheet[0, 6, 0] == 50 and sheet[5, 0, 0] == 100 and sheet[5, 6, 0] == 255
