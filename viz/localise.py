"""Weakly supervised object localisation from a saliency map (Sect. 3.2).

Colour models: Gaussian mixtures fitted to the pixels whose saliency is above its 95%
quantile (foreground) and below its 30% quantile (background). GraphCut (Boykov-Jolly, as
in GrabCut): unaries are the negative log-likelihoods under the two models, the pairwise
term a contrast-sensitive Potts model on the 8-neighbourhood,

    V(p, q) = gamma / dist(p, q) * exp(-beta * ||z_p - z_q||^2) * [label_p != label_q],
    beta = 1 / (2 * mean ||z_p - z_q||^2 over neighbouring pairs).

The object mask is the largest 8-connected component of the foreground (of the foreground
seeds, should GraphCut label no pixel foreground); the box is its bounding box,
(x0, y0, x1, y1) with x1 and y1 one past the last column and row.
"""
from dataclasses import dataclass

import numpy as np

from ..engine import InputError, Mode
from .saliency import saliency_maps
from .images import working_image

# The pairwise weight. The paper does not give one; GrabCut's 50 (this module's default
# until the 96.1% model) labels too much background as object on the 112x112 shapes images:
# the boxes that miss are 3x too big. On 300 held-out images (seed 1; the evaluation's seed 2
# untouched), backprop 10-crop maps, GT-known error by gamma: 10: 32.0%, 25: 24.3%, 50: 20.7%,
# 100: 15.7%, 150: 15.7%, 200: 15.3%, 300: 17.3%, 500: 21.3%; 150 is the middle of the flat part.
PAIRWISE_WEIGHT = 150.0

# The four directions that, taken both ways, make the 8-neighbourhood: (dy, dx).
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass
class Localisation:
    box: tuple  # (x0, y0, x1, y1), half-open
    mask: np.ndarray  # (H, W) bool: the largest connected foreground component
    foreground_seeds: np.ndarray  # (H, W) bool: pixels the foreground model was fitted to
    background_seeds: np.ndarray  # (H, W) bool: pixels the background model was fitted to
    graphcut: np.ndarray  # (H, W) bool: every pixel GraphCut labelled foreground
    class_index: int = None
    class_name: str = None
    score: float = None
    saliency: np.ndarray = None


def fit_colour_model(pixels, components, seed=0):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    # No more components than distinct colours: a flat region has one (more would not converge).
    distinct = len(np.unique(pixels, axis=0))
    components = max(1, min(components, len(pixels) // 2, distinct))
    model = GaussianMixture(n_components=components, covariance_type="full", reg_covar=1e-2,
                            random_state=seed, max_iter=100)
    # A mixture still moving after 100 EM steps is a usable colour model (the unaries only
    # rank pixels); scikit-learn's warning about it would be noise on the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(pixels)


def _shifted_pairs(array, dy, dx):
    """The (array[p], array[p + (dy, dx)]) views over the pixels p whose neighbour exists."""
    height, width = array.shape[:2]
    rows, cols = slice(0, height - dy), slice(max(0, -dx), width - max(0, dx))
    neighbour_cols = slice(max(0, dx), width - max(0, -dx))
    return array[rows, cols], array[dy:, neighbour_cols], (rows, cols)


def graphcut(image, foreground_cost, background_cost, gamma=PAIRWISE_WEIGHT):
    """Binary GraphCut segmentation; returns the (H, W) bool foreground labelling."""
    import maxflow

    image = np.asarray(image, np.float64)
    height, width = image.shape[:2]
    differences = {}
    for dy, dx in _DIRECTIONS:
        here, there, place = _shifted_pairs(image, dy, dx)
        differences[(dy, dx)] = (((here - there) ** 2).sum(axis=-1), place)
    mean_difference = np.mean(np.concatenate([d.ravel() for d, _ in differences.values()]))
    beta = 1.0 / (2.0 * mean_difference) if mean_difference > 0 else 0.0

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes((height, width))
    for (dy, dx), (squared, place) in differences.items():
        weights = np.zeros((height, width))
        weights[place] = gamma / np.hypot(dy, dx) * np.exp(-beta * squared)
        structure = np.zeros((3, 3))
        structure[1 + dy, 1 + dx] = 1
        graph.add_grid_edges(nodes, weights=weights, structure=structure, symmetric=True)
    # Source = foreground: cutting a pixel's source edge labels it background, at the
    # background cost; cutting its sink edge labels it foreground.
    floor = np.minimum(foreground_cost, background_cost)
    graph.add_grid_tedges(nodes, background_cost - floor, foreground_cost - floor)
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)


def largest_component(mask):
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros_like(mask, bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(sizes.argmax())


def bounding_box(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def box_iou(a, b):
    """Intersection over union of two half-open (x0, y0, x1, y1) boxes."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def seed_regions(saliency, foreground_quantile=0.95, background_quantile=0.30):
    """The foreground and background seed masks: saliency above / below its quantiles."""
    high, low = np.quantile(saliency, [foreground_quantile, background_quantile])
    foreground = saliency > high
    if not foreground.any():  # a flat map: take the maximum itself
        foreground = saliency >= high
    background = (saliency < low) & ~foreground
    if not background.any():
        background = (saliency <= low) & ~foreground
    return foreground, background


def localise_from_saliency(image, saliency, foreground_quantile=0.95, background_quantile=0.30,
                           components=5, gamma=PAIRWISE_WEIGHT, seed=0):
    """Segments the object a saliency map points at and returns a Localisation."""
    image = np.asarray(image, np.float64)
    saliency = np.asarray(saliency, np.float64)
    if image.shape[:2] != saliency.shape:
        raise InputError(f"the saliency map is {saliency.shape[0]}x{saliency.shape[1]} but the image is "
                         f"{image.shape[0]}x{image.shape[1]}")
    if not 0 <= background_quantile < foreground_quantile <= 1:
        raise InputError("quantiles must satisfy 0 <= background < foreground <= 1, got "
                         f"{background_quantile} and {foreground_quantile}")
    foreground, background = seed_regions(saliency, foreground_quantile, background_quantile)
    if not background.any():
        raise InputError("the saliency map is constant: no background seeds")
    pixels = image.reshape(-1, 3)
    foreground_model = fit_colour_model(pixels[foreground.ravel()], components, seed)
    background_model = fit_colour_model(pixels[background.ravel()], components, seed)
    foreground_cost = -foreground_model.score_samples(pixels).reshape(saliency.shape)
    background_cost = -background_model.score_samples(pixels).reshape(saliency.shape)
    labelling = graphcut(image, foreground_cost, background_cost, gamma)
    # GraphCut may label nothing foreground (say, on pure noise); a box is still owed, so
    # fall back to the foreground seeds.
    mask = largest_component(labelling if labelling.any() else foreground)
    return Localisation(box=bounding_box(mask), mask=mask, foreground_seeds=foreground,
                        background_seeds=background, graphcut=labelling)


def localise(model, image, top_k=5, crops=10, mode=Mode.BACKPROP, **options):
    """The paper's procedure for each of the top_k classes: saliency (one forward, a
    backward per class), colour models, GraphCut, largest component, box."""
    image = working_image(model, image)
    maps, classes, scores = saliency_maps(model, image, crops=crops, mode=mode, top_k=top_k)
    results = []
    for class_index, saliency_map in zip(classes, maps):
        result = localise_from_saliency(image, saliency_map, **options)
        result.class_index, result.class_name = class_index, model.classes[class_index]
        result.score = float(scores[class_index])
        result.saliency = saliency_map
        results.append(result)
    return results
