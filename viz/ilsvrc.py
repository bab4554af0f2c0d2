"""The paper's localisation protocol on a local ILSVRC-format validation folder.

The folder holds images and PASCAL-VOC-style XML annotations (ILSVRC's CLS-LOC layout:
<filename>, and <object><name>WNID</name><bndbox>xmin ymin xmax ymax</bndbox> with
1-based inclusive pixel coordinates), in any sub-folders. For each image: the top-5
classes from 10 crops, then for each the saliency map, colour models, GraphCut, largest
component and box (Sect. 3.2). As the challenge counts it, a prediction is right when its
class is one of the image's and its box overlaps a true box of that class at IoU >= 0.5;
the top-k error counts an image wrong when none of its first k predictions is right.

Results go to results.jsonl one line per image as they are computed; a rerun reads that
file (checking every record) and continues where it stopped, repeating and losing nothing.
An output folder that holds something else is refused unless `overwrite`, which starts
afresh. Every image's header is checked before the first is evaluated.
"""
import json
import os
import time
import xml.etree.ElementTree as ElementTree

import numpy as np

from PIL import Image

from ..engine import InputError, Mode
from ..models.weights import write_atomically
from .images import DECODE_ERRORS, ImageError, check_image_size, load_image, working_image
from .localise import box_iou, localise_from_saliency
from .saliency import saliency_maps

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_folder(directory):
    """[(image path, [(wnid, (x0, y0, x1, y1)), ...]), ...] sorted by image name; boxes
    converted to 0-based half-open coordinates."""
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: no such folder")
    images, annotations = {}, []
    for root, _, files in os.walk(directory):
        for name in files:
            stem, extension = os.path.splitext(name)
            if extension.lower() in IMAGE_EXTENSIONS:
                images[stem] = os.path.join(root, name)
            elif extension.lower() == ".xml":
                annotations.append(os.path.join(root, name))
    entries = []
    for xml_path in sorted(annotations):
        try:
            root = ElementTree.parse(xml_path).getroot()
            stem = os.path.splitext(root.findtext("filename", os.path.basename(xml_path)[:-4]).strip())[0]
            objects = [(o.findtext("name").strip(),
                        tuple(int(float(o.find("bndbox").findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")))
                       for o in root.iter("object")]
        except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as error:
            raise InputError(f"{xml_path}: not a readable PASCAL-VOC annotation ({error})") from None
        if stem not in images:
            raise InputError(f"{xml_path}: its image {stem} is not in {directory}")
        boxes = [(wnid, (x0 - 1, y0 - 1, x1, y1)) for wnid, (x0, y0, x1, y1) in objects]
        entries.append((images[stem], boxes))
    if not entries:
        raise InputError(f"{directory}: no XML annotations found")
    for image_path, _ in entries:  # a damaged image found now, not an hour into the run
        try:
            with Image.open(image_path) as image:
                check_image_size(image_path, *image.size)
        except DECODE_ERRORS as error:
            raise ImageError(f"{image_path}: not a readable image ({error})") from None
    return sorted(entries, key=lambda entry: os.path.basename(entry[0]))


def evaluate_image(model, path, truth, top_k=5, crops=10, mode=Mode.BACKPROP):
    """One image's record: predictions with boxes in the original image's pixels."""
    original = load_image(path)
    image = working_image(model, original)
    scale_y, scale_x = original.shape[0] / image.shape[0], original.shape[1] / image.shape[1]
    maps, classes, scores = saliency_maps(model, image, crops=crops, mode=mode, top_k=top_k)
    predictions = []
    for class_index, saliency_map in zip(classes, maps):
        score = float(scores[class_index])
        x0, y0, x1, y1 = localise_from_saliency(image, saliency_map).box
        box = (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
        synset = model.synsets[class_index]
        overlaps = [box_iou(box, true_box) for wnid, true_box in truth if wnid == synset]
        predictions.append({"synset": synset, "score": score, "box": [round(v, 2) for v in box],
                            "iou": round(max(overlaps, default=0.0), 6)})
    classes = {wnid for wnid, _ in truth}
    right_class = [p["synset"] in classes for p in predictions]
    right_box = [c and p["iou"] >= 0.5 for c, p in zip(right_class, predictions)]
    return {"image": os.path.basename(path), "truth": sorted(classes), "predictions": predictions,
            "top1_cls": right_class[0], "top5_cls": any(right_class[:5]),
            "top1_loc": right_box[0], "top5_loc": any(right_box[:5])}


def read_results(path):
    """The records already written; a last line cut by an interruption is dropped (and
    cut from the file, so that appending goes on cleanly)."""
    if not os.path.exists(path):
        return []
    records, good_bytes = [], 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                break  # the last line, cut by an interruption
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not (isinstance(record, dict) and isinstance(record.get("image"), str)
                    and all(isinstance(record.get(k), bool) for k in RATES)):
                raise InputError(f"{path}: line {number} is not a result record of this command; "
                                 "pass --overwrite to start afresh")
            records.append(record)
            good_bytes += len(line)
    with open(path, "r+b") as handle:
        handle.truncate(good_bytes)
    return records


def _output_folder(out, overwrite):
    """The folder to resume in or start: refused if it holds anything but our results."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InputError(f"{out}: exists and is not a folder; choose a new output folder")
    results_path = os.path.join(out, "results.jsonl")
    if os.path.isdir(out) and overwrite:
        for name in ("results.jsonl", "summary.json", "table.md"):
            if os.path.exists(os.path.join(out, name)):
                os.unlink(os.path.join(out, name))
    if os.path.isdir(out) and set(os.listdir(out)) - {"results.jsonl", "summary.json", "table.md"}:
        raise InputError(f"{out}: holds files that are not this command's results; choose a new output folder")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(results_path):
        raise InputError(f"{out}: exists without results.jsonl to resume from; pass --overwrite to start afresh")
    os.makedirs(out, exist_ok=True)
    return results_path


def evaluate_folder(model, directory, out, top_k=5, crops=10, mode=Mode.BACKPROP, progress=True, overwrite=False):
    """Runs (or resumes) the protocol over a folder; writes summary.json and table.md
    beside results.jsonl at the end, and returns the totals."""
    from tqdm import tqdm

    if model.synsets is None or len(model.synsets) != len(model.classes):
        raise InputError("the model carries no WordNet ids for its outputs: pass --synsets FILE "
                         "(one id such as n01440764 per output, in output order)")
    entries = read_folder(directory)
    results_path = _output_folder(out, overwrite)
    records = read_results(results_path)
    done = {r["image"] for r in records}
    remaining = [(path, truth) for path, truth in entries if os.path.basename(path) not in done]
    start = time.perf_counter()
    with open(results_path, "a") as handle:
        for path, truth in tqdm(remaining, desc="ilsvrc", unit="image", disable=not progress):
            record = evaluate_image(model, path, truth, top_k, crops, mode)
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            records.append(record)
    seconds = time.perf_counter() - start
    totals = summarise(records)
    totals["seconds_per_image_this_run"] = round(seconds / len(remaining), 3) if remaining else None
    for name, text in (("summary.json", json.dumps(totals, indent=2, allow_nan=False)),
                       ("table.md", markdown_table(totals))):
        write_atomically(os.path.join(out, name), lambda temporary: _write_text(temporary, text))
    return totals


def _write_text(path, text):
    with open(path, "w") as handle:
        handle.write(text)


RATES = ("top1_cls", "top5_cls", "top1_loc", "top5_loc")


def summarise(records):
    count = len(records)
    rate = lambda key: float(np.mean([not r[key] for r in records])) if count else None
    return {"images": count, "top1_cls_error": rate("top1_cls"), "top5_cls_error": rate("top5_cls"),
            "top1_loc_error": rate("top1_loc"), "top5_loc_error": rate("top5_loc")}


def markdown_table(totals):
    rows = [("images", f"{totals['images']}")]
    for key, label in (("top1_cls_error", "top-1 classification error"), ("top5_cls_error", "top-5 classification error"),
                       ("top1_loc_error", "top-1 localisation error"), ("top5_loc_error", "top-5 localisation error")):
        rows.append((label, f"{100 * totals[key]:.1f}%"))
    return "| measure | value |\n| --- | --- |\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n"
