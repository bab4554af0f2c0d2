"""The `deepinside` command."""
import argparse
import json
import os
import sys
import time

import numpy as np

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


class UserError(Exception):
    """Ends the command with one line on stderr and exit status 2."""


def _demo(arguments):
    import engine
    import models
    from . import render, saliency_details, working_image

    engine.nn.manual_seed(arguments.seed)
    net = models.cnn_f(num_classes=10, input_size=224)
    model = models.Model(net=net, classes=[f"class {i}" for i in range(10)], input_size=224,
                         image_size=256, mean=np.array([124.0, 117.0, 104.0], np.float32))
    image_path = arguments.image or os.path.join(SAMPLES, "flower.png")
    image = working_image(model, image_path)
    summary = {"image": image_path, "model": "cnn_f with random weights (seed %d)" % arguments.seed,
               "backend": engine.get_backend(), "crops": arguments.crops, "maps": {}}
    with render.StagedOutput(arguments.out) as out:
        out.png("image.png", image.round())
        for mode in engine.MODES:
            start = time.perf_counter()
            saliency_map, class_index, scores = saliency_details(model, image, crops=arguments.crops, mode=mode)
            seconds = time.perf_counter() - start
            out.png(f"saliency-{mode}.png", render.heatmap(saliency_map))
            out.png(f"overlay-{mode}.png", render.overlay(image, saliency_map))
            out.npy(f"saliency-{mode}.npy", saliency_map)
            summary["maps"][mode] = {"class_index": class_index, "score": float(scores[class_index]),
                                     "seconds": round(seconds, 3)}
            print(f"{mode:>9}: class {class_index}, {seconds:.2f} s", file=sys.stderr)
        with open(out.path("summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2)
    print(f"wrote {arguments.out}/", file=sys.stderr)


def _parser():
    parser = argparse.ArgumentParser(
        prog="deepinside",
        description="Looking inside image-classification ConvNets (Simonyan et al. 2013).")
    parser.add_argument("--backend", default=None,
                        help="compute backend: numpy or auto (default: $DEEPINSIDE_BACKEND, else auto)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="saliency maps in the three backward modes on a sample image",
        description="Computes the saliency map (Sect. 3.1) of a sample image in the three backward "
                    "modes (backprop, deconvnet, guided) and writes heat maps, overlays, the raw "
                    "arrays (.npy) and summary.json into --out. Until trained weights ship, the "
                    "network is CNN-F with seeded random weights.")
    demo.add_argument("--out", required=True, help="output folder (written only if everything succeeds)")
    demo.add_argument("--image", help="image to explain (default: the shipped flower.png)")
    demo.add_argument("--crops", type=int, default=1, choices=(1, 10), help="1 (centre) or 10 crops")
    demo.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    arguments = _parser().parse_args(argv)
    from models import ModelFileError
    from .images import ImageError
    try:
        if arguments.backend:
            import engine
            engine.set_backend(arguments.backend)
        arguments.run(arguments)
    except (UserError, ImageError, ModelFileError, ValueError, OSError) as error:
        print(f"deepinside: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
