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


def build_report(model, model_name, images=None, class_model_steps=150, progress=print):
    """The HTML page as a string."""
    start = time.perf_counter()
    images = images or sample_images()
    parts = [f"<h1>deepinside: inside {html.escape(model_name)}</h1>",
             f"<p>{len(model.classes)} classes, {model.input_size}x{model.input_size} input crops of images resized "
             f"to a short side of {model.image_size}. Methods of Simonyan, Vedaldi and Zisserman, <i>Deep Inside "
             "Convolutional Networks</i> (2013).</p>"]

    progress("class model images")
    every_class = list(range(len(model.classes)))
    # One step from the zero image tells whether the ascent can move from there at all.
    init_std, starting_image = 0.0, "the zero image"
    if stuck_classes(class_model(model, every_class, steps=1, lr=1.0, l2=1e-3)):
        init_std = 0.5
        starting_image = ("Gaussian noise of std 0.5 in the network's normalised input (from the zero image the "
                          "gradient of this network is exactly zero: every unit of some layer is off there, and the "
                          "ascent never moves)")
    result = class_model(model, every_class, steps=class_model_steps, lr=1.0, l2=1e-3, init_std=init_std)
    parts.append("<h2>Class model images (Sect. 2)</h2><p>Gradient ascent on S<sub>c</sub>(I) - &lambda;||I||&sup2; "
                 f"from {starting_image} (&lambda; = 1e-3, {class_model_steps} steps), the mean image added for display."
                 "</p><div class=row>")
    parts += [_img(_png(image, 2), f"{model.classes[c]} (S = {score:.1f})")
              for c, image, score in zip(result.classes, result.images, result.trace[-1])]
    parts.append("</div>")

    parts.append("<h2>Image-specific saliency (Sect. 3.1)</h2><p>M = max over colour channels of |dS<sub>c</sub>/dI| "
                 "for the top-1 class, in the three backward modes, from the centre crop and from 10 crops.</p>")
    for path in images:
        progress(f"saliency: {os.path.basename(path)}")
        image = working_image(model, path)
        top = classify(model, image, top_k=3, crops=10)
        cells = [_img(_png(image, 2), os.path.basename(path))]
        for mode in MODES:
            for crops in (1, 10):
                (saliency_map,), _, _ = saliency_maps(model, image, [top[0][0]], crops=crops, mode=mode)
                cells.append(_img(_png(render.heatmap(saliency_map), 2), f"{mode}, {crops} crop{'s' * (crops > 1)}"))
        parts.append(f"<h3>{html.escape(os.path.basename(path))}</h3>")
        parts.append(_table(["class", "score"], [(name, f"{score:.2f}") for _, name, score in top]))
        parts.append("<div class=row>" + "".join(cells) + "</div>")

    parts.append("<h2>Weakly supervised localisation (Sect. 3.2)</h2><p>Layout of the paper's Fig. 3: image, "
                 "saliency (10 crops), seeds (foreground blue: above the 95% quantile; background cyan: below the "
                 "30% quantile), GraphCut's largest component and its box, for the top-1 class.</p>")
    for path in images:
        progress(f"localisation: {os.path.basename(path)}")
        image = working_image(model, path)
        results = localise(model, image, top_k=1, crops=10)
        parts.append(_img(_figure_file(lambda p: render.localisation_figure(p, image, results)),
                          f"{os.path.basename(path)}: {results[0].class_name}, box {results[0].box}"))

    path = images[0]
    progress("DeconvNet reconstructions")
    image = working_image(model, path)
    last_conv = max(i for i, layer in enumerate(model.net) if type(layer).__name__ == "Conv2d")
    _, x = centre_input(model, image)
    inputs, _, _ = forward_record(model.net[: last_conv + 2], x)
    activation = to_numpy(model.net[last_conv + 1](inputs[last_conv + 1]).data)[0]
    strongest = np.argsort(-activation.reshape(activation.shape[0], -1).max(axis=1))[:6]
    parts.append(f"<h2>DeconvNet reconstructions (Zeiler and Fergus)</h2><p>The six most active channels of the last "
                 f"convolution's ReLU (layer {last_conv + 1}) on {html.escape(os.path.basename(path))}, each projected "
                 "down to the input on its own.</p><div class=row>")
    for channel in strongest:
        reconstruction, crop = deconv_reconstruction(model, image, last_conv + 1, int(channel))
        parts.append(_img(_png(for_display(reconstruction), 2), f"channel {channel}"))
    parts.append(_img(_png(crop, 2), "the centre crop") + "</div>")

    progress("DeconvNet vs backprop")
    rows, cumulative = compare_deconvnet(model, image)
    parts.append("<h2>DeconvNet and backprop (Sect. 4)</h2><p>The same signal from above through each layer's "
                 "DeconvNet step (a), its autodiff backward in deconvnet mode (b) and in backprop mode (c).</p>")
    table_rows = [(r["layer"], r["type"], f"{r['max_abs_diff_deconv_vs_autodiff']:.3g}",
                   f"{r['max_abs_diff_deconv_vs_backprop']:.3g}", f"{r['cosine_deconv_vs_backprop']:.4f}") for r in rows]
    table_rows.append(("input", "(whole path)", f"{cumulative['max_abs_diff_deconv_vs_autodiff']:.3g}",
                       f"{cumulative['max_abs_diff_deconv_vs_backprop']:.3g}",
                       f"{cumulative['cosine_deconv_vs_backprop']:.4f}"))
    parts.append(_table(["layer", "type", "max |a - b|", "max |a - c|", "cosine(a, c)"], table_rows))
    parts.append(_img(_figure_file(lambda p: render.comparison_figure(p, rows, cumulative)), "DeconvNet vs backprop"))
    parts.append(f"<p>Built in {time.perf_counter() - start:.1f} s.</p>")
    style = ("<style>body{font-family:sans-serif;max-width:1100px;margin:auto}figure{display:inline-block;margin:4px;"
             "text-align:center;font-size:12px}.row{display:flex;flex-wrap:wrap}table{border-collapse:collapse;"
             "margin:8px 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}</style>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>deepinside demo</title>{style}"
            f"</head><body>{''.join(parts)}</body></html>")
