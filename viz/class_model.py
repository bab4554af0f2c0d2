"""Class model visualisation (Sect. 2): arg max_I S_c(I) - l2 * ||I||^2.

Gradient ascent from the zero image in the network's zero-centred input space; the mean
image is added back for display. Several classes are optimised together, one image per
class in one batch. objective="posterior" maximises the softmax posterior P_c instead, to
reproduce the paper's remark that it gives less prominent images. Jitter (a random shift
before each step) and blur (a Gaussian blur every few steps) are optional regularisers of
later work, off by default so that the default is the paper's recipe.
"""
from dataclasses import dataclass

import numpy as np

from .. import engine
from ..engine import InputError

OBJECTIVES = ("score", "posterior")


@dataclass
class ClassModel:
    images: np.ndarray  # (K, H, W, 3) in [0, 255]: the mean plus the contrast-stretched image
    raw: np.ndarray  # (K, H, W, 3): the optimised image in pixel units plus the mean, unclipped
    trace: np.ndarray  # (steps + 1, K): S_c (or P_c) of each class's image before each step and at the end
    classes: list


def _softmax(scores):
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _gaussian_blur(images, sigma):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(images, sigma=(0, 0, sigma, sigma))


def _score_pass(model, classes, images):
    """images -> (the scores, d S_c / d image for each image's class) as arrays of the net's
    backend: recorded once as a CUDA graph where that is cuda (engine.capture), since a
    class model is hundreds of identical passes, each bound by its launches from Python
    when run eagerly at batch 1; elsewhere the pass simply runs at every call."""
    backend = model.net.backend
    seed = np.zeros((len(classes), len(model.classes)), images.dtype)
    seed[np.arange(len(classes)), classes] = 1
    seed = backend.asarray(seed)

    def one_pass(images):
        x = engine.Tensor(images, requires_grad=True, backend=backend)
        out = model.net(x)
        return out.data, engine.grad(out, [x], grad_output=seed)[0]

    return engine.capture(one_pass, images, backend=backend)


def _posterior_gradient(model, images, classes):
    """(P_c per image, d P_c / d image), one forward and backward: the seed needs the
    forward's scores on the host first, so this pass is not recorded."""
    x = engine.Tensor(images, requires_grad=True, backend=model.net.backend)
    out = model.net(x)
    rows = np.arange(len(classes))
    posterior = _softmax(out.numpy().astype(np.float64))
    value = posterior[rows, classes]
    seed = (-value[:, None] * posterior).astype(images.dtype)  # dP_c/dS = P_c (e_c - P)
    seed[rows, classes] += value
    (gradient,) = engine.grad(out, [x], grad_output=seed)
    return value, engine.to_numpy(gradient)


def for_display(signed, base=127.5):
    """base + signed, with signed stretched so that its 99th percentile magnitude spans
    half the display range, clipped to [0, 255] (one gain per image, all channels)."""
    signed = np.asarray(signed, np.float64)
    peak = np.percentile(np.abs(signed), 99)
    gain = 127.5 / peak if peak > 0 else 0.0
    return np.clip(base + gain * signed, 0, 255)


def stuck_classes(result):
    """The classes whose score never changed: the ascent started where the gradient is zero."""
    return [c for c, trace in zip(result.classes, result.trace.T) if np.ptp(trace) == 0]


def class_model(model, class_index, steps=200, lr=1.0, l2=1e-3, objective="score",
                jitter=0, blur_every=0, blur_sigma=0.5, seed=0, progress=False, init_std=0.0):
    """Optimises one input image per class in `class_index` (an int or a list of ints),
    from the zero image as in the paper, or with `init_std` > 0 from Gaussian noise of that
    std in the network's normalised input: a trained ReLU net can be dead at the zero image
    (every unit of some layer off), where the gradient is exactly zero and the ascent never
    moves."""
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    classes = [class_index] if np.isscalar(class_index) else list(class_index)
    count = len(model.classes)
    for c in classes:
        if not 0 <= c < count:
            raise InputError(f"class index {c} is out of range: the model has {count} classes")
    if steps < 0 or lr <= 0 or l2 < 0 or init_std < 0:
        raise InputError(f"need steps >= 0, lr > 0, l2 >= 0 and init_std >= 0, got {steps}, {lr}, {l2}, {init_std}")
    model.net.eval()
    rng = np.random.default_rng(seed)
    dtype = model.net.parameters()[0].dtype
    size = model.input_size
    images = (rng.standard_normal((len(classes), 3, size, size)) * init_std).astype(dtype)
    classes = np.asarray(classes)
    rows = np.arange(len(classes))
    score_pass = _score_pass(model, classes, images) if objective == "score" and steps else None
    trace = []
    bar = _progress(steps, progress)
    for step in range(steps):
        shift = tuple(rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        shifted = np.roll(images, shift, axis=(2, 3))
        if score_pass:
            scores, gradient = score_pass(shifted)
            value, gradient = engine.to_numpy(scores)[rows, classes], engine.to_numpy(gradient)
        else:
            value, gradient = _posterior_gradient(model, shifted, classes)
        trace.append(value)
        gradient = np.roll(gradient, (-shift[0], -shift[1]), axis=(2, 3))
        images += (lr * (gradient - 2 * l2 * images)).astype(dtype)
        if blur_every and (step + 1) % blur_every == 0:
            images = _gaussian_blur(images, blur_sigma).astype(dtype)
        bar.update(1)
    bar.close()
    with engine.no_grad():
        scores = model.net(engine.Tensor(images, backend=model.net.backend)).numpy()
    trace.append(scores[rows, classes] if objective == "score" else _softmax(scores)[rows, classes])
    mean = np.asarray(model.mean, np.float64)
    mean = (mean.reshape(3, 1, 1) if mean.ndim == 1 else mean).transpose(1, 2, 0)
    optimised = images.astype(np.float64).transpose(0, 2, 3, 1) * np.asarray(model.std, np.float64)
    return ClassModel(images=np.stack([for_display(i, mean) for i in optimised]), raw=optimised + mean,
                      trace=np.array(trace), classes=[int(c) for c in classes])


def _progress(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc="class model", unit="step", leave=False)
