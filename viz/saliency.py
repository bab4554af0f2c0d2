"""Image-specific class saliency (Sect. 3.1): M_ij = max_c |dS_c/dI_ijc|."""
import numpy as np

import engine
from .crops import crop_boxes, extract
from .images import to_input, working_image


def class_scores(model, batch):
    """Unnormalised class scores (N, K) of a (N, 3, H, W) batch, with no graph recorded."""
    model.net.eval()
    with engine.no_grad():
        return model.net(engine.Tensor(batch)).numpy()


def saliency(model, image, class_index=None, crops=1, mode="backprop"):
    """Saliency map over the working image (H, W), float32.

    class_index defaults to the top-1 class of the averaged crop scores. With crops=10 the
    maps of the 4 corner crops, the centre crop and their mirrors are computed in one
    batched forward and backward, mirrored back, added at their places and divided by the
    number of crops covering each pixel (0 where none does).
    """
    return saliency_details(model, image, class_index, crops, mode)[0]


def saliency_details(model, image, class_index=None, crops=1, mode="backprop"):
    """(map, class index, crop-averaged class scores) from one forward and one backward."""
    image = working_image(model, image)
    size = model.input_size
    boxes = crop_boxes(image.shape[0], image.shape[1], size, crops)
    batch = to_input(model, [extract(image, box, size) for box in boxes])

    model.net.eval()
    x = engine.Tensor(batch.astype(model.net.parameters()[0].dtype), requires_grad=True)
    scores = model.net(x)
    score_values = scores.numpy()
    if class_index is None:
        class_index = int(score_values.mean(axis=0).argmax())
    if not 0 <= class_index < score_values.shape[1]:
        raise ValueError(f"class index {class_index} is out of range: the model has "
                         f"{score_values.shape[1]} classes")
    seed = np.zeros(score_values.shape, x.dtype)
    seed[:, class_index] = 1  # dS_c/dI for each crop, in one backward pass
    (gradient,) = engine.grad(scores, [x], grad_output=seed, mode=mode)
    per_crop = np.abs(np.asarray(gradient)).max(axis=1)

    total = np.zeros(image.shape[:2], np.float64)
    count = np.zeros(image.shape[:2], np.float64)
    for (top, left, mirrored), crop_map in zip(boxes, per_crop):
        total[top : top + size, left : left + size] += crop_map[:, ::-1] if mirrored else crop_map
        count[top : top + size, left : left + size] += 1
    result = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return result.astype(np.float32), class_index, score_values.mean(axis=0)
