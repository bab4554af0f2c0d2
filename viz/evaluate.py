"""The paper's localisation measured on generated images with ground truth, and the
cascading-randomisation sanity check of the saliency maps (Adebayo et al. 2018).

Methods compared, for the ground-truth class's saliency map in each backward mode and with
1 or 10 crops: the paper's (GMM colour models, GraphCut, largest component, box), the box
of the largest component of the thresholded saliency alone (no GraphCut), and two
baselines that look at nothing: the whole image and a centred box of the average object
size (measured on training images). A box is right at IoU >= 0.5 with the true box;
top-1 localisation also needs the top-1 class right.
"""
import time

import numpy as np

from ..engine import MODES
from ..models.data import EVALUATION_SEED, SANITY_SEED, TRAIN_SEED, generate
from .localise import bounding_box, box_iou, largest_component, localise_from_saliency
from .saliency import classify, saliency_maps


def mask_iou(a, b):
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def box_mask(box, shape):
    mask = np.zeros(shape, bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return mask


def average_box(size, count=500):
    """A centred box of the average object width and height of `count` training images."""
    boxes = generate(count, TRAIN_SEED)[3]
    width, height = (boxes[:, 2] - boxes[:, 0]).mean(), (boxes[:, 3] - boxes[:, 1]).mean()
    x0, y0 = round((size - width) / 2), round((size - height) / 2)
    return (x0, y0, x0 + round(width), y0 + round(height))


# average_box(IMAGE_SIZE), the centred baseline's box, worked out once: it renders 500
# training images, which took most of a small evaluation's time when every run did it
# (a test recomputes it).
CENTRED_BOX = (36, 37, 75, 76)


def evaluate_generated(model, count=1000, seed=None, modes=MODES, crops=(1, 10),
                       progress=True):
    """Per-method totals: top-1 and GT-known localisation error, pointing game, mean mask
    IoU, seconds per image. Returns (rows, classification accuracy)."""
    from tqdm import tqdm

    seed = EVALUATION_SEED if seed is None else seed
    scores = {}

    def add(method, right_class, box, mask, true_box, true_mask, seconds, pointing=None):
        entry = scores.setdefault(method, {"top1": [], "known": [], "pointing": [], "iou": [], "seconds": []})
        hit = box_iou(box, true_box) >= 0.5
        entry["known"].append(hit)
        entry["top1"].append(hit and right_class)
        entry["iou"].append(mask_iou(mask, true_mask))
        entry["seconds"].append(seconds)
        if pointing is not None:
            entry["pointing"].append(pointing)

    correct = 0
    for index in tqdm(range(count), desc="evaluate", unit="image", disable=not progress):
        images, labels, masks, boxes = generate(1, seed, index)
        image, label, true_mask, true_box = images[0].astype(np.float32), int(labels[0]), masks[0], tuple(boxes[0])
        right_class = classify(model, image, top_k=1)[0][0] == label
        correct += right_class
        whole = (0, 0, image.shape[1], image.shape[0])
        add("whole image", right_class, whole, box_mask(whole, true_mask.shape), true_box, true_mask, 0.0)
        add("centred box of the average object size", right_class, CENTRED_BOX,
            box_mask(CENTRED_BOX, true_mask.shape), true_box, true_mask, 0.0)
        for mode in modes:
            for crop_count in crops:
                start = time.perf_counter()
                (saliency_map,), _, _ = saliency_maps(model, image, [label], crops=crop_count, mode=mode)
                saliency_seconds = time.perf_counter() - start
                peak = np.unravel_index(np.argmax(saliency_map), saliency_map.shape)
                pointing = bool(true_mask[peak])
                name = f"{mode}, {crop_count} crop{'s' if crop_count > 1 else ''}"
                start = time.perf_counter()
                thresholded = largest_component(saliency_map > np.quantile(saliency_map, 0.95))
                box = bounding_box(thresholded) or whole
                add(f"thresholded saliency box ({name})", right_class, box, thresholded, true_box, true_mask,
                    saliency_seconds + time.perf_counter() - start, pointing)
                start = time.perf_counter()
                result = localise_from_saliency(image, saliency_map)
                add(f"paper: GMM + GraphCut ({name})", right_class, result.box, result.mask, true_box, true_mask,
                    saliency_seconds + time.perf_counter() - start, pointing)
    rows = []
    for method, entry in scores.items():
        rows.append({"method": method,
                     "top1_localisation_error": 1 - float(np.mean(entry["top1"])),
                     "gt_known_localisation_error": 1 - float(np.mean(entry["known"])),
                     "pointing_game": float(np.mean(entry["pointing"])) if entry["pointing"] else None,
                     "mean_mask_iou": float(np.mean(entry["iou"])),
                     "seconds_per_image": float(np.mean(entry["seconds"]))})
    return rows, correct / count


def evaluation_table(rows, accuracy, count):
    lines = [f"Top-1 classification accuracy {100 * accuracy:.1f}% on {count} held-out generated images.", "",
             "| method | top-1 loc. error | GT-known loc. error | pointing game | mean mask IoU | s / image |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        pointing = "" if r["pointing_game"] is None else f"{100 * r['pointing_game']:.1f}%"
        lines.append(f"| {r['method']} | {100 * r['top1_localisation_error']:.1f}% | "
                     f"{100 * r['gt_known_localisation_error']:.1f}% | {pointing} | {r['mean_mask_iou']:.3f} | "
                     f"{r['seconds_per_image']:.3f} |")
    return "\n".join(lines) + "\n"


def cascading_randomisation(model, count=50, seed=None, modes=MODES):
    """Spearman rank correlation between the trained model's saliency maps and those after
    re-initialising the weights of the top 1, 2, ... parameterised layers (top down).
    Returns rows {"randomised": "up to <layer>", mode: mean correlation, ...}."""
    from scipy.stats import spearmanr

    seed = SANITY_SEED if seed is None else seed
    images, labels, _, _ = generate(count, seed)
    images = images.astype(np.float32)

    def maps(mode):
        return [saliency_maps(model, image, [int(label)], mode=mode)[0][0] for image, label in zip(images, labels)]

    reference = {mode: maps(mode) for mode in modes}
    layers = [(i, layer) for i, layer in enumerate(model.net) if layer.parameters()][::-1]
    saved = {id(p): p.data for _, layer in layers for p in layer.parameters()}
    rng = np.random.default_rng(0)
    rows = []
    try:
        for i, layer in layers:
            for parameter in layer.parameters():  # the original initialisation's scale
                bound = 1 / np.sqrt(max(1, int(np.prod(layer.weight.shape[1:]))))
                parameter.data = parameter.backend.asarray(rng.uniform(-bound, bound, parameter.shape).astype(np.float32))
            row = {"randomised": f"down to layer {i} ({type(layer).__name__})"}
            for mode in modes:
                row[mode] = float(np.mean([spearmanr(a.ravel(), b.ravel())[0]
                                           for a, b in zip(reference[mode], maps(mode))]))
            rows.append(row)
    finally:
        for _, layer in layers:
            for parameter in layer.parameters():
                parameter.data = saved[id(parameter)]
    return rows


def sanity_table(rows, modes=MODES):
    lines = ["| weights randomised from the top | " + " | ".join(modes) + " |", "| --- |" + " ---: |" * len(modes)]
    for row in rows:
        lines.append(f"| {row['randomised']} | " + " | ".join(f"{row[m]:.3f}" for m in modes) + " |")
    return "\n".join(lines) + "\n"
