"""The `deepinside` command: one subcommand per method of the paper.

Every subcommand writes PNGs a person can look at, the raw arrays (.npy) and a JSON
summary into --out, all or nothing, by one rule (viz.render.StagedOutput): --out must be a
new or empty folder, or --overwrite replaces it whole. Every argument is checked before
any work. A user error ends with one line and exit status 2.
"""
import argparse
import contextlib
import math
import os
import sys
import time

import numpy as np

from .engine import MODES, InputError, keep_freed_memory
from .viz.localise import PAIRWISE_WEIGHT


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _output(arguments):
    """The command's output folder, checked and staged before any work starts."""
    from .viz import render

    return render.StagedOutput(arguments.out, overwrite=arguments.overwrite)


def _progress(items, description):
    from tqdm import tqdm

    return tqdm(items, desc=description, disable=len(items) < 2 or not sys.stderr.isatty(), leave=False)


def _model(arguments):
    from . import models

    return models.load(arguments.model, arch=arguments.arch, classes=arguments.classes)


def _output_file(path, overwrite, what="--out"):
    """A weight file to write: a .safetensors name in a writable folder, not an existing
    file unless `overwrite`, never the shipped model (train has its own option for that)."""
    from .models.loading import DEFAULT_PATH
    from .models.weights import check_new_path

    if not path.endswith(".safetensors"):
        raise InputError(f"{path}: the output file name must end in .safetensors")
    absolute = check_new_path(path, "output file")
    if os.path.isdir(absolute):
        raise InputError(f"{path}: is a folder; {what} names the weight file to write")
    if os.path.exists(absolute) and os.path.samefile(absolute, DEFAULT_PATH):
        raise InputError(f"{path}: is the shipped model; only deepinside train --replace-shipped-model replaces it")
    if os.path.lexists(absolute) and not overwrite:
        raise InputError(f"{path}: exists; choose a new file name, or pass --overwrite to replace it")
    folder = os.path.dirname(absolute)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write there (the folder {folder} does not exist or is not writable)")
    return absolute


def _convert(arguments, out):
    from . import models

    output = _output_file(arguments.output, arguments.overwrite, "OUT")
    model = models.load(arguments.input, arch=arguments.arch, classes=arguments.classes)
    models.save_model(output, model)
    print(f"wrote {arguments.output}: {len(model.net)} layers, {len(model.classes)} classes, "
          f"input {model.input_size}x{model.input_size}", file=sys.stderr)


def _train(arguments, out):
    from .models.loading import DEFAULT_PATH
    from .models.train import train

    if arguments.replace_shipped_model:
        output = DEFAULT_PATH
    else:
        output = _output_file(arguments.out, arguments.overwrite)
    print(f"training; the weights will be written to {output}", flush=True)
    train(output, images=arguments.images, epochs=arguments.epochs, batch_size=arguments.batch_size,
          lr=arguments.lr, weight_decay=arguments.weight_decay, dropout=arguments.dropout, seed=arguments.seed,
          held_out=arguments.held_out, log=lambda line: print(line, flush=True), progress=sys.stderr.isatty())


def _classify(arguments, out):
    from .viz import classify

    model = _model(arguments)
    summary = {}
    for path in _progress(arguments.images, "classify"):
        rows = classify(model, path, top_k=arguments.top_k, crops=arguments.crops)
        summary[path] = [{"class_index": c, "class_name": n, "score": s} for c, n, s in rows]
        print(path)
        for c, n, s in rows:
            print(f"  {s:10.4f}  {c:5d}  {n}")
    if out:
        out.json("summary.json", summary)


def _saliency(arguments, out):
    from .viz import render, saliency_maps, working_image

    model = _model(arguments)
    classes = None if arguments.class_index is None else [arguments.class_index]
    summary = {}
    for path in _progress(arguments.images, "saliency"):
        image = working_image(model, path)
        maps, (class_index,), scores = saliency_maps(
            model, image, classes, crops=arguments.crops, mode=arguments.mode,
            smoothgrad_samples=arguments.smoothgrad, smoothgrad_noise=arguments.noise)
        stem = _stem(path)
        out.png(f"{stem}-saliency.png", render.heatmap(maps[0]))
        out.png(f"{stem}-overlay.png", render.overlay(image, maps[0]))
        out.npy(f"{stem}-saliency.npy", maps[0])
        summary[path] = {"class_index": class_index, "class_name": model.classes[class_index],
                         "score": float(scores[class_index]), "mode": arguments.mode, "crops": arguments.crops}
    out.json("summary.json", summary)


def _classmodel(arguments, out):
    from .viz import render
    from .viz.class_model import class_model, stuck_classes

    model = _model(arguments)
    classes = arguments.class_index if arguments.class_index else list(range(len(model.classes)))
    result = class_model(model, classes, steps=arguments.steps, lr=arguments.lr, l2=arguments.l2,
                         objective=arguments.objective, jitter=arguments.jitter,
                         blur_every=arguments.blur_every, progress=sys.stderr.isatty(), init_std=arguments.init_std)
    stuck = stuck_classes(result)
    if stuck and arguments.steps:
        print(f"deepinside: warning: the score of class {', '.join(model.classes[c] for c in stuck)} never changed: "
              "the gradient is zero at the start image (every unit of some layer is off there); "
              "start from noise with --init-std 0.5", file=sys.stderr)
    for c, image, raw in zip(result.classes, result.images, result.raw):
        out.png(f"classmodel-{c}.png", render.to_uint8(image))
        out.npy(f"classmodel-{c}.npy", raw)
    out.png("classmodels.png", render.montage(result.images))
    names = [model.classes[c] for c in result.classes]
    render.trace_figure(out.path("trace.png"), result.trace, names, "S_c" if arguments.objective == "score" else "P_c")
    out.npy("trace.npy", result.trace)
    out.json("summary.json", {
        "classes": [{"class_index": c, "class_name": n, "final": float(v)}
                    for c, n, v in zip(result.classes, names, result.trace[-1])],
        "objective": arguments.objective, "steps": arguments.steps, "lr": arguments.lr, "l2": arguments.l2})


def _localise(arguments, out):
    from .viz import render, working_image
    from .viz.localise import localise

    model = _model(arguments)
    summary = {}
    for path in _progress(arguments.images, "localise"):
        image = working_image(model, path)
        results = localise(model, image, top_k=arguments.top_k, crops=arguments.crops, mode=arguments.mode,
                           foreground_quantile=arguments.fg_quantile, background_quantile=arguments.bg_quantile,
                           gamma=arguments.gamma)
        stem = _stem(path)
        render.localisation_figure(out.path(f"{stem}-localisation.png"), image, results)
        out.npy(f"{stem}-masks.npy", np.stack([r.mask for r in results]))
        summary[path] = [{"class_index": r.class_index, "class_name": r.class_name,
                          "score": r.score, "box": r.box} for r in results]
    out.json("summary.json", summary)


def _deconv(arguments, out):
    from .viz import render
    from .viz.class_model import for_display
    from .viz.deconvnet import deconv_reconstruction

    model = _model(arguments)
    unit = tuple(arguments.unit) if arguments.unit else None
    reconstruction, crop = deconv_reconstruction(model, arguments.image, arguments.layer, arguments.channel, unit)
    out.png("reconstruction.png", render.to_uint8(for_display(reconstruction)))
    out.png("crop.png", render.to_uint8(crop))
    out.npy("reconstruction.npy", reconstruction)
    out.json("summary.json", {"image": arguments.image, "layer": arguments.layer, "channel": arguments.channel,
                              "unit": unit})


def _compare(arguments, out):
    from .viz import render
    from .viz.deconvnet import compare_deconvnet, format_table

    model = _model(arguments)
    rows, cumulative = compare_deconvnet(model, arguments.image, arguments.class_index)
    print(format_table(rows, cumulative))
    render.comparison_figure(out.path("compare.png"), rows, cumulative)
    out.json("summary.json", {"layers": rows, "input": cumulative})


def _evaluate_ilsvrc(arguments, out):
    """Resumable: --out holds results.jsonl, appended image by image (viz/ilsvrc.py)."""
    from .viz.ilsvrc import evaluate_folder, markdown_table

    model = _model(arguments)
    if arguments.synsets:
        from .models.importers import read_class_names
        model.synsets = read_class_names(arguments.synsets, len(model.classes))
    totals = evaluate_folder(model, arguments.ilsvrc, arguments.out, top_k=arguments.top_k, crops=arguments.crops,
                             mode=arguments.mode, progress=sys.stderr.isatty(), overwrite=arguments.overwrite)
    print(markdown_table(totals))


def _evaluate_generated(arguments, out):
    from .viz import render
    from .viz.evaluate import cascading_randomisation, evaluate_generated, evaluation_table, sanity_table

    model = _model(arguments)
    rows, accuracy = evaluate_generated(model, count=arguments.images,
                                        crops=(1, arguments.crops) if arguments.crops > 1 else (1,),
                                        progress=sys.stderr.isatty())
    sanity = cascading_randomisation(model, count=arguments.sanity_images) if arguments.sanity_images else []
    table = evaluation_table(rows, accuracy, arguments.images) + ("\n" + sanity_table(sanity) if sanity else "")
    print(table)
    out.json("summary.json", {"accuracy": accuracy, "methods": rows, "sanity_check": sanity})
    with open(out.path("table.md"), "w") as handle:
        handle.write(table)
    if sanity:
        render.sanity_figure(out.path("sanity.png"), sanity)


def _demo(arguments, out):
    from .viz.report import build_report, sample_images

    model = _model(arguments)
    name = os.path.basename(arguments.model) if arguments.model else "the shipped model (models/default.safetensors)"
    images = sample_images() + list(arguments.image or [])
    start = time.perf_counter()
    page = build_report(model, name, images, progress=lambda step: print(f"  {step}", file=sys.stderr, flush=True))
    with open(out.path("index.html"), "w", encoding="utf-8") as handle:
        handle.write(page)
    print(f"wrote {os.path.join(arguments.out, 'index.html')} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """One line for a usage error, as for every other user error; no abbreviated options
    (`--class 11` must not become `--classes 11`)."""

    def __init__(self, *arguments, **options):
        super().__init__(*arguments, allow_abbrev=False, **options)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _whole(minimum, maximum=None):
    """An argparse type: a whole number in [minimum, maximum]."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected a whole number {bound}")
        return value
    return parse


def _number(minimum=None, maximum=None, above=None, below=None):
    """An argparse type: a finite number within the given bounds."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)
                or (above is not None and value <= above) or (below is not None and value >= below)):
            bounds = [f">= {minimum}" if minimum is not None else "", f"<= {maximum}" if maximum is not None else "",
                      f"> {above}" if above is not None else "", f"< {below}" if below is not None else ""]
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected a number "
                                             f"{' and '.join(b for b in bounds if b)}")
        return value
    return parse


COUNT = _whole(1, 10 ** 6)  # images, steps, classes: at least one, and nothing absurd


def _add_import_options(parser):
    parser.add_argument("--arch", choices=("alexnet", "vgg16"),
                        help="architecture of a torchvision state dict, where the file cannot tell")
    parser.add_argument("--classes", metavar="FILE", help="class names, one per line, for files that carry none")


def _common(model=True):
    parent = _Parser(add_help=False)
    if model:
        parent.add_argument("--model", metavar="FILE",
                            help="weight file: ours (.safetensors), torchvision AlexNet/VGG-16 (.pth, .safetensors), "
                                 ".onnx or MatConvNet .mat (default: the shipped model)")
        _add_import_options(parent)
    parent.add_argument("--backend", default=None, metavar="NAME",
                        help="compute backend: numpy, cuda (our kernels on a GPU), emulator (the same kernels on "
                             "the CPU, slow) or auto (default: $DEEPINSIDE_BACKEND, else auto)")
    parent.add_argument("--overwrite", action="store_true",
                        help="replace the output if it exists (a folder is replaced whole, never merged into)")
    return parent


def _add_out(parser, required=True, what="output folder"):
    parser.add_argument("--out", required=required,
                        help=f"{what}: must not exist or be empty (or pass --overwrite); written only if "
                             "everything succeeds")


def _add_mode(parser):
    parser.add_argument("--mode", default="backprop", choices=MODES,
                        help="backward rule at ReLU: backprop (the true gradient, the paper's), "
                             "deconvnet (Zeiler and Fergus) or guided (guided backprop)")


def _add_crops(parser, default):
    parser.add_argument("--crops", type=int, default=default, choices=(1, 10),
                        help=f"1: the centre crop; 10: 4 corners, centre and their mirrors, averaged (default {default})")


def _parser():
    parser = _Parser(
        prog="deepinside",
        description="Looking inside image-classification ConvNets (Simonyan, Vedaldi, Zisserman 2013). "
                    "Each command writes PNGs, .npy arrays and summary.json into --out, a new folder "
                    "(or --overwrite to replace one), all or nothing.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = _common()

    p = commands.add_parser("classify", parents=[common], help="top-k classes of images",
                            description="Prints the top-k classes of each image with their unnormalised scores.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=COUNT, default=5, help="how many classes to report (default 5)")
    _add_crops(p, 1)
    _add_out(p, required=False, what="folder for summary.json (optional)")
    p.set_defaults(run=_classify, folder=True)

    p = commands.add_parser("saliency", parents=[common], help="image-specific class saliency maps (Sect. 3.1)",
                            description="Saliency map M = max over colour channels of |dS_c/dI|, for the top-1 "
                                        "class or --class, over the working image.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--class", dest="class_index", type=_whole(0), help="class index (default: the top-1 class)")
    _add_mode(p)
    _add_crops(p, 1)
    p.add_argument("--smoothgrad", type=_whole(0, 1000), default=0, metavar="N",
                   help="average the maps of N noisy copies (SmoothGrad; default 0: off)")
    p.add_argument("--noise", type=_number(minimum=0, maximum=10), default=0.15,
                   help="SmoothGrad noise, as a fraction of the input's value range (default 0.15)")
    _add_out(p)
    p.set_defaults(run=_saliency, folder=True)

    p = commands.add_parser("classmodel", parents=[common], help="class model images (Sect. 2)",
                            description="Gradient ascent on S_c(I) - l2 ||I||^2 from the zero image; the mean "
                                        "image is added for display.")
    p.add_argument("--class", dest="class_index", type=_whole(0), nargs="+",
                   help="class indices (default: every class), optimised together in one batch")
    p.add_argument("--steps", type=_whole(0, 10 ** 6), default=200, help="gradient ascent steps (default 200)")
    p.add_argument("--lr", type=_number(above=0), default=1.0, help="step size (default 1.0)")
    p.add_argument("--l2", type=_number(minimum=0), default=1e-3, help="L2 regularisation lambda (default 1e-3)")
    p.add_argument("--objective", default="score", choices=("score", "posterior"),
                   help="maximise the unnormalised score (the paper's) or the softmax posterior")
    p.add_argument("--jitter", type=_whole(0, 1000), default=0, help="random shift in pixels before each step (default 0: off)")
    p.add_argument("--blur-every", type=_whole(0, 10 ** 6), default=0, help="Gaussian blur every N steps (default 0: off)")
    p.add_argument("--init-std", type=_number(minimum=0, maximum=1000), default=0.0,
                   help="start from Gaussian noise of this std in the normalised input (default 0: the zero image, "
                        "as in the paper)")
    _add_out(p)
    p.set_defaults(run=_classmodel, folder=True)

    p = commands.add_parser("localise", parents=[common], help="weakly supervised localisation (Sect. 3.2)",
                            description="For each of the top-k classes: saliency, GMM colour models from the "
                                        "seeds, GraphCut, largest connected component, bounding box.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=COUNT, default=5, help="classes per image (default 5)")
    _add_mode(p)
    _add_crops(p, 10)
    p.add_argument("--fg-quantile", type=_number(above=0, maximum=1), default=0.95, help="foreground seeds: saliency above this quantile")
    p.add_argument("--bg-quantile", type=_number(minimum=0, below=1), default=0.30, help="background seeds: saliency below this quantile")
    p.add_argument("--gamma", type=_number(minimum=0), default=PAIRWISE_WEIGHT,
                   help=f"GraphCut's pairwise weight (default {PAIRWISE_WEIGHT:g}; larger: smoother, fewer pieces)")
    _add_out(p)
    p.set_defaults(run=_localise, folder=True)

    p = commands.add_parser("deconv", parents=[common], help="DeconvNet reconstruction of one channel or unit",
                            description="Keeps one channel (or one unit) of a layer's output and projects it "
                                        "down to the input as Zeiler and Fergus do.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", required=True,
                   help="layer index in the network (negative counts from the end), or a path into a block: 18.3 is "
                        "layer 3 inside block 18")
    p.add_argument("--channel", type=_whole(0), required=True, help="channel (or output unit) of that layer")
    p.add_argument("--unit", type=_whole(0), nargs=2, metavar=("ROW", "COLUMN"), help="keep only this spatial unit")
    _add_out(p)
    p.set_defaults(run=_deconv, folder=True)

    p = commands.add_parser("compare", parents=[common], help="DeconvNet vs backprop, layer by layer (Sect. 4)",
                            description="Sends the same signal through each layer's DeconvNet step and its "
                                        "autodiff backward in deconvnet and backprop modes, and reports the "
                                        "differences (they differ only at ReLU).")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--class", dest="class_index", type=_whole(0), help="class index (default: the top-1 class)")
    _add_out(p)
    p.set_defaults(run=_compare, folder=True)

    p = commands.add_parser("evaluate", parents=[common], help="measure localisation on generated or ILSVRC data",
                            description="Without --ilsvrc: on held-out generated images with ground truth, the "
                                        "paper's localisation and baselines in every backward mode with 1 and 10 "
                                        "crops (top-1 and GT-known localisation error, pointing game, mask IoU, "
                                        "time), and the cascading-randomisation sanity check. With --ilsvrc DIR: "
                                        "the paper's protocol (10-crop saliency, GMM, GraphCut, largest component, "
                                        "box) for the top-k classes of every image of a local ILSVRC-format folder, "
                                        "reporting top-1/top-5 classification and localisation errors as the "
                                        "challenge counts them; each image's result is appended to "
                                        "OUT/results.jsonl as it is computed and a rerun resumes.")
    p.add_argument("--images", type=COUNT, default=1000, help="generated images to evaluate on (default 1000)")
    p.add_argument("--sanity-images", type=_whole(0, 10 ** 6), default=50, help="images for the sanity check (default 50)")
    p.add_argument("--ilsvrc", metavar="DIR", help="the validation folder")
    p.add_argument("--synsets", metavar="FILE",
                   help="WordNet ids of the outputs, one per line, for models that carry none")
    p.add_argument("--top-k", type=COUNT, default=5, help="predictions per image (default 5)")
    _add_mode(p)
    _add_crops(p, 10)
    p.add_argument("--out", required=True,
                   help="output folder (summary.json, table.md; with --ilsvrc also results.jsonl, appended as "
                        "images are done, from which a rerun resumes); must be new or empty, or --overwrite")
    p.set_defaults(run=_evaluate_generated, folder=True)

    p = commands.add_parser("train", parents=[_common(model=False)], help="train the default model on generated shapes",
                            description="Trains a scaled CNN-F (5 conv layers, max-pool after conv1, conv2 and conv5, "
                                        "3 fully connected layers) on generated images of 10 shape classes, with SGD, "
                                        "momentum, weight decay, dropout, crop and flip jitter, with BatchNorm after "
                                        "each convolution folded into it before saving; logs every epoch and "
                                        "writes the weights.")
    p.add_argument("--out", default="shapes-net.safetensors",
                   help="weight file to write (default: shapes-net.safetensors in the current folder); refused if "
                        "it exists, unless --overwrite; checked before training starts")
    p.add_argument("--replace-shipped-model", action="store_true",
                   help="write the weights over the shipped model (models/default.safetensors) instead of --out")
    p.add_argument("--images", type=COUNT, default=50000, help="training images (default 50000)")
    p.add_argument("--epochs", type=_whole(1, 10 ** 4), default=39, help="epochs (default 39)")
    p.add_argument("--held-out", type=COUNT, default=2000,
                   help="held-out images the accuracy is measured on after every epoch (default 2000)")
    p.add_argument("--batch-size", type=_whole(1, 10 ** 4), default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=_number(above=0, maximum=100), default=0.05,
                   help="peak learning rate (default 0.05; linear warm-up over 300 steps, then cosine decay)")
    p.add_argument("--weight-decay", type=_number(minimum=0, maximum=100), default=5e-4, help="weight decay (default 0.0005)")
    p.add_argument("--dropout", type=_number(minimum=0, below=1), default=0.1, help="dropout before full7 and full8 (default 0.1)")
    p.add_argument("--seed", type=_whole(0, 10 ** 6), default=0, help="seed of data, weights and jitter (default 0)")
    p.set_defaults(run=_train, folder=False)

    p = commands.add_parser("convert", parents=[_common(model=False)], help="write any readable weight file as ours",
                            description="Reads a weight file in any supported format (torchvision .pth or "
                                        ".safetensors, ONNX, MatConvNet .mat, ours) and writes it as our "
                                        "safetensors file, atomically.")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT.safetensors")
    _add_import_options(p)
    p.set_defaults(run=_convert, folder=False)

    p = commands.add_parser("demo", parents=[common], help="every method on the shipped model, as one HTML report",
                            description="Runs every method of the paper (class model images for all classes, "
                                        "saliency in the three modes with 1 and 10 crops, localisation in the "
                                        "layout of Fig. 3, DeconvNet reconstructions, the DeconvNet/backprop "
                                        "comparison) on the shipped model and sample images, and writes "
                                        "OUT/index.html, a self-contained page that opens offline.")
    _add_out(p, what="output folder for index.html")
    p.add_argument("--image", nargs="+", help="more images to include")
    p.set_defaults(run=_demo, folder=True)
    return parser


def main(argv=None):
    """Runs one command; a user error (InputError: a bad image, weight file or value; or an
    OSError on a path the user named) ends in one line and exit status 2. Anything else
    is a bug and keeps its traceback."""
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed in one line
        return stop.code
    keep_freed_memory()
    if arguments.command == "evaluate" and arguments.ilsvrc:
        arguments.run, arguments.folder = _evaluate_ilsvrc, False  # resumable: manages its folder itself
    try:
        out = _output(arguments) if arguments.folder and arguments.out is not None else None
        with out or contextlib.nullcontext():
            if arguments.backend:
                from . import engine
                engine.set_backend(arguments.backend)
            arguments.run(arguments, out)
    except InputError as error:
        print(f"deepinside: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.filename is None:
            raise
        print(f"deepinside: error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
