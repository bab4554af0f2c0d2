"""Prediction and image-specific class saliency (Sect. 3.1): M_ij = max_c |dS_c/dI_ijc|."""
import numpy as np

from .. import engine
from ..engine import InputError, Mode
from .crops import crop_boxes, extract
from .images import to_input, working_image


def _crop_batch(model, image, crops):
    """The working image, its crop boxes and the mean-subtracted batch of crops."""
    image = working_image(model, image)
    boxes = crop_boxes(image.shape[0], image.shape[1], model.input_size, crops)
    batch = to_input(model, [extract(image, box, model.input_size) for box in boxes])
    return image, boxes, batch.astype(model.net.parameters()[0].dtype)


def _check_class(model, class_index, count):
    if not 0 <= class_index < count:
        raise InputError(f"class index {class_index} is out of range: the model has {count} classes")
    return int(class_index)


# glibc hands a freed block back out only up to its mmap threshold (32 MB at most, which
# engine.keep_freed_memory sets) and maps every bigger array anew, a page fault per 4 KB at
# each allocation. On the NumPy path a batch of crops therefore runs as slices whose largest
# activation stays under that size (VGG-16: 2 crops of 224x224, EfficientNet-Lite0: 6): the
# 10-crop saliency pass 5.1 -> 4.1 s (VGG-16) and 358 -> 312 ms (EfficientNet-Lite0).
FRESH_PAGES_BYTES = 32 << 20


def batch_slices(model, batch):
    """The slices of a batch of inputs that run as one pass each: the whole batch, except on
    the NumPy path (see FRESH_PAGES_BYTES)."""
    net = model.net
    if net.backend.name != "numpy" or not isinstance(net, engine.nn.Sequential):
        return [slice(0, len(batch))]
    per_image = net.largest_activation((1,) + batch.shape[1:]) * batch.itemsize
    size = max(1, FRESH_PAGES_BYTES // per_image)
    return [slice(start, start + size) for start in range(0, len(batch), size)]


def class_scores(model, batch):
    """Unnormalised class scores (N, K) of a (N, 3, H, W) batch, with no graph recorded."""
    model.net.eval()
    with engine.no_grad():
        return np.concatenate([model.net(engine.Tensor(batch[part], backend=model.net.backend)).numpy()
                               for part in batch_slices(model, batch)])


def classify(model, image, top_k=5, crops=1):
    """The top_k (class_index, class_name, score) rows, scores unnormalised and averaged
    over the crops."""
    _, _, batch = _crop_batch(model, image, crops)
    scores = class_scores(model, batch).mean(axis=0)
    return [(int(i), model.classes[i], float(scores[i])) for i in _top(scores, top_k)]


def _top(scores, top_k):
    return np.argsort(-scores, kind="stable")[:top_k]


def _accumulate(shape, boxes, per_crop, size):
    """Adds each crop's map at its place (mirrored back) and divides by the coverage."""
    total, count = np.zeros(shape, np.float64), np.zeros(shape, np.float64)
    for (top, left, mirrored), crop_map in zip(boxes, per_crop):
        total[top : top + size, left : left + size] += crop_map[:, ::-1] if mirrored else crop_map
        count[top : top + size, left : left + size] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0).astype(np.float32)


def saliency_maps(model, image, class_indices=None, crops=1, mode=Mode.BACKPROP,
                  smoothgrad_samples=0, smoothgrad_noise=0.15, seed=0, top_k=1):
    """Saliency maps of several classes from one forward pass (one backward per class).

    Returns (maps, classes, scores): maps (len(classes), H, W) over the working image,
    the classes (the top_k of the crop-averaged scores, best first, when class_indices is
    None: classification and saliency from the same forward pass) and the crop-averaged
    scores. With smoothgrad_samples > 0 each map is the mean of the maps of
    that many noisy copies of the crops (SmoothGrad; noise standard deviation
    smoothgrad_noise times the input's value range).
    """
    image, boxes, batch = _crop_batch(model, image, crops)
    model.net.eval()
    rng = np.random.default_rng(seed)
    copies = [batch]
    if smoothgrad_samples:
        sigma = smoothgrad_noise * float(batch.max() - batch.min())
        copies = [batch + rng.normal(0, sigma, batch.shape).astype(batch.dtype)
                  for _ in range(smoothgrad_samples)]
        scores = class_scores(model, batch).mean(axis=0)  # classes are chosen on the clean crops

    per_class = None
    parts = batch_slices(model, batch)
    for noisy in copies:
        inputs = [engine.Tensor(noisy[part], requires_grad=True, backend=model.net.backend) for part in parts]
        outputs = [model.net(x) for x in inputs]
        if per_class is None:
            if not smoothgrad_samples:
                scores = np.concatenate([out.numpy() for out in outputs]).mean(axis=0)
            if class_indices is None:
                class_indices = [int(c) for c in _top(scores, top_k)]
            class_indices = [_check_class(model, c, scores.size) for c in class_indices]
            per_class = np.zeros((len(class_indices), len(boxes)) + batch.shape[2:], np.float64)
        for k, class_index in enumerate(class_indices):
            for part, x, out in zip(parts, inputs, outputs):
                seed_gradient = np.zeros(out.shape, x.dtype)
                seed_gradient[:, class_index] = 1  # dS_c/dI for every crop of the slice in one backward
                (gradient,) = engine.grad(out, [x], grad_output=seed_gradient, mode=mode,
                                          retain_graph=k + 1 < len(class_indices))
                per_class[k, part] += np.abs(engine.to_numpy(gradient)).max(axis=1)
    per_class /= len(copies)
    maps = np.stack([_accumulate(image.shape[:2], boxes, crop_maps, model.input_size)
                     for crop_maps in per_class])
    return maps, class_indices, scores


def saliency(model, image, class_index=None, crops=1, mode=Mode.BACKPROP,
             smoothgrad_samples=0, smoothgrad_noise=0.15):
    """Saliency map (H, W) over the working image, float32.

    class_index defaults to the top-1 class. crops=1 is the centre crop; crops=10 the 4
    corner crops, the centre crop and their mirrors, computed in batched forwards and
    backwards (see batch_slices), each map mirrored back, added at its place and divided by
    the number of crops covering each pixel (0 where none does). mode: "backprop" (the paper's),
    "deconvnet" or "guided". smoothgrad_samples > 0 turns on SmoothGrad.
    """
    classes = None if class_index is None else [class_index]
    maps, _, _ = saliency_maps(model, image, classes, crops, mode, smoothgrad_samples, smoothgrad_noise)
    return maps[0]
