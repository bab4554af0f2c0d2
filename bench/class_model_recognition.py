"""Are the shipped model's class model images recognisable? Each is classified by a second
shapes net, trained by the same command with another seed (not shipped), and counted as
recognised when that net's top-1 is the class the image was made for.

    python bench/class_model_recognition.py SECOND_MODEL [--out FOLDER]

Two recipes, as README shows them: the paper's (score objective, from the zero image, L2
only) and the regularised one (jitter and blur, from noise). The images are what a viewer
sees: the optimised image plus the mean, clipped to [0, 255], then preprocessed as the
second model's own input.
"""
import argparse
import json
import os

import numpy as np

from deepinside import engine, models, viz
from deepinside.models.train import to_batch

RECIPES = {
    "paper (zero start, L2)": dict(steps=200, lr=1.0, l2=1e-2),
    "regularised (jitter 4, blur every 4, noise start 0.5)": dict(steps=200, lr=1.0, l2=1e-2, jitter=4, blur_every=4,
                                                                  init_std=0.5),
}


def recognised(first, second, recipe):
    classes = list(range(len(first.classes)))
    result = viz.class_model(first, classes, **recipe)
    pixels = np.clip(result.raw, 0, 255).astype(np.float32)
    batch = to_batch(pixels, second.mean, second.std)  # the second model's own preprocessing
    with engine.no_grad():
        scores = second.net.eval()(engine.Tensor(batch)).numpy()
    stuck = viz.stuck_classes(result)
    return [dict(class_name=first.classes[c], predicted=second.classes[int(scores[c].argmax())],
                 recognised=bool(scores[c].argmax() == c), stuck=c in stuck) for c in classes], result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("second_model")
    parser.add_argument("--model", default=None, help="the model whose class models are made (default: the shipped one)")
    parser.add_argument("--out", default=None, help="folder for summary.json and the images")
    arguments = parser.parse_args()
    first, second = models.load(arguments.model), models.load(arguments.second_model)
    summary = {}
    for name, recipe in RECIPES.items():
        rows, result = recognised(first, second, recipe)
        summary[name] = rows
        count = sum(row["recognised"] for row in rows)
        print(f"{name}: {count} of {len(rows)} recognised")
        for row in rows:
            print(f"  {row['class_name']:9s} -> {row['predicted']:9s}{'  (ascent never moved)' if row['stuck'] else ''}")
        if arguments.out:
            os.makedirs(arguments.out, exist_ok=True)
            from PIL import Image
            strip = np.concatenate(list(result.images.astype(np.uint8)), axis=1)
            Image.fromarray(strip).save(os.path.join(arguments.out, f"{name.split()[0]}.png"))
    if arguments.out:
        with open(os.path.join(arguments.out, "summary.json"), "w") as file:
            json.dump(dict(recipes=RECIPES, results=summary), file, indent=1)


if __name__ == "__main__":
    main()
