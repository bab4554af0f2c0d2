"""DeconvNet reconstructions (Zeiler and Fergus) and the equivalence experiment (Sect. 4).

The reconstruction path calls the kernels directly, layer by layer (each layer's
`zeiler_step`, the step its op family declares in kernels/), and never the autodiff
engine's backward, so the two can be compared:

    convolution      -> convolution with the flipped, transposed filters (conv2d_backward_data)
    max-pool         -> unpooling through the forward pass's switches (maxpool_backward)
    ReLU             -> ReLU applied to the reconstruction itself (relu_forward)
    fully connected  -> the transposed weights (linear_backward_data)
    LRN              -> its Jacobian transpose (Zeiler and Fergus left normalisation out)
    average pooling  -> its transpose (spreading each average back evenly)
    flatten, dropout -> reshape, identity (evaluation mode)

Sect. 4 of the paper: the reconstruction equals the autodiff backward in "deconvnet" mode
at every layer, and equals the true gradient ("backprop") everywhere except at ReLU.
"""
import numpy as np

from .. import engine
from ..engine import InputError, Mode, nn
from .crops import crop_boxes, extract
from .images import to_input, working_image


def forward_record(net, x):
    """Runs the net with no graph, keeping every layer's input and each max-pool's switches."""
    inputs, switches = [], {}
    with engine.no_grad():
        for index, layer in enumerate(net):
            inputs.append(x)
            x, state = layer.forward_with_state(x)
            if state is not None:
                switches[index] = state
    return inputs, switches, x


def autodiff_step(layer, signal, layer_input, mode):
    """The same step through the engine's backward pass, in a given mode."""
    x = engine.Tensor(layer_input, requires_grad=True)
    return engine.grad(layer(x), [x], grad_output=signal, mode=mode)[0]


def centre_input(model, image):
    image = working_image(model, image)
    box = crop_boxes(image.shape[0], image.shape[1], model.input_size, 1)[0]
    crop = extract(image, box, model.input_size)
    parameter = model.net.parameters()[0]
    return crop, engine.Tensor(to_input(model, [crop]).astype(parameter.dtype), backend=parameter.backend)


def _layer_index(net, layer, where="layer", owner="the network"):
    index = layer + len(net) if layer < 0 else layer
    if not 0 <= index < len(net):
        raise InputError(f"{where} {layer} is out of range: {owner} has {len(net)} layers")
    return index


def layer_path(layer):
    """A layer given as an index (negative from the end) or a path into blocks, "18.3" or
    (18, 3): layer 3 inside block 18."""
    if isinstance(layer, str):
        try:
            return tuple(int(part) for part in layer.split("."))
        except ValueError:
            raise InputError(f"layer {layer!r} is not an index or a path of indices like 18.3") from None
    return tuple(layer) if isinstance(layer, (tuple, list)) else (int(layer),)


def _signal(activation, channel, unit, where):
    """The activation kept at one channel (or one unit of it), zero elsewhere."""
    if not 0 <= channel < activation.shape[1]:
        raise InputError(f"channel {channel} is out of range: {where} has {activation.shape[1]} channels")
    signal = activation * 0
    if unit is None:
        signal[:, channel] = activation[:, channel]
        return signal
    if activation.ndim != 4:
        raise InputError(f"{where} has no spatial units (its output is {activation.shape})")
    row, column = unit
    if not (0 <= row < activation.shape[2] and 0 <= column < activation.shape[3]):
        raise InputError(f"unit {unit} is outside {where}'s {activation.shape[2]}x{activation.shape[3]} map")
    signal[:, channel, row, column] = activation[:, channel, row, column]
    return signal


def _project(net, path, x, channel, unit, where="layer", owner="the network"):
    """The reconstruction at `net`'s input of one channel (or unit) of the layer at `path`:
    inside a block, through the block's earlier layers first (an inner unit's signal does
    not travel the identity path of a residual block), then through the layers before it."""
    index = _layer_index(net, path[0], where, owner)
    where = f"{where} {index}"
    inputs, switches, _ = forward_record(net[: index + 1], x)
    if len(path) == 1:
        with engine.no_grad():
            signal = _signal(net[index](inputs[index]).data, channel, unit, where)
        first = index
    else:
        if not isinstance(net[index], nn.Sequential):
            raise InputError(f"{where} is a {type(net[index]).__name__}, not a block with layers inside")
        signal = _project(net[index], path[1:], inputs[index], channel, unit, f"{where}, layer", f"block {index}")
        first = index - 1
    for position in range(first, -1, -1):
        signal = net[position].zeiler_step(signal, inputs[position], switches.get(position))
    return signal


def deconv_reconstruction(model, image, layer, channel, unit=None):
    """Projects one channel (or one unit (row, column) of it) of a layer's output down to
    the input; `layer` an index or a path into blocks ("18.3"). Returns (reconstruction
    (H, W, 3) of the centre crop, the crop)."""
    model.net.eval()
    crop, x = centre_input(model, image)
    signal = _project(model.net, layer_path(layer), x, channel, unit)
    return engine.to_numpy(signal)[0].transpose(1, 2, 0), crop


def _cosine(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else float(np.array_equal(a, b))


def compare_deconvnet(model, image, class_index=None):
    """The experiment of Sect. 4, from the class score down to the input.

    At each layer the same signal from above (the DeconvNet reconstruction so far,
    starting from the one-hot class score) goes through (a) the layer's Zeiler step,
    (b) its autodiff backward in "deconvnet" mode and (c) in "backprop" mode. Returns
    (rows, cumulative): one dict per layer, and the whole reconstruction at the input
    against the full saliency gradient in both modes. The autodiff runs layer by layer
    (nn.layer_by_layer), as the Zeiler steps do: (a) and (b) can then agree exactly.
    """
    with nn.layer_by_layer():
        return _compare(model, image, class_index)


def _compare(model, image, class_index):
    model.net.eval()
    _, x = centre_input(model, image)
    inputs, switches, scores = forward_record(model.net, x)
    if class_index is None:
        class_index = int(scores.data[0].argmax())
    if not 0 <= class_index < scores.shape[1]:
        raise InputError(f"class index {class_index} is out of range: the model has {scores.shape[1]} classes")
    top = x.backend.xp.zeros(scores.shape, scores.dtype)
    top[0, class_index] = 1
    signal, rows = top, []
    for position in range(len(model.net) - 1, -1, -1):
        layer = model.net[position]
        step = layer.zeiler_step(signal, inputs[position], switches.get(position))
        deconv = engine.to_numpy(autodiff_step(layer, signal, inputs[position], Mode.DECONVNET))
        backprop = engine.to_numpy(autodiff_step(layer, signal, inputs[position], Mode.BACKPROP))
        zeiler, signal = engine.to_numpy(step), step
        rows.append({
            "layer": position, "type": type(layer).__name__,
            "max_abs_diff_deconv_vs_autodiff": float(np.abs(zeiler - deconv).max()),
            "max_abs_diff_deconv_vs_backprop": float(np.abs(zeiler - backprop).max()),
            "cosine_deconv_vs_backprop": _cosine(zeiler, backprop),
            "signal_norm": float(np.linalg.norm(zeiler)),
        })
    image_input = engine.Tensor(x, requires_grad=True)
    out = model.net(image_input)
    gradient = {mode: engine.to_numpy(engine.grad(out, [image_input], grad_output=top, mode=mode,
                                                  retain_graph=True)[0]) for mode in (Mode.DECONVNET, Mode.BACKPROP)}
    signal = engine.to_numpy(signal)
    cumulative = {
        "class_index": class_index,
        "max_abs_diff_deconv_vs_autodiff": float(np.abs(signal - gradient[Mode.DECONVNET]).max()),
        "max_abs_diff_deconv_vs_backprop": float(np.abs(signal - gradient[Mode.BACKPROP]).max()),
        "cosine_deconv_vs_backprop": _cosine(signal, gradient[Mode.BACKPROP]),
        "gradient_norm": float(np.linalg.norm(gradient[Mode.BACKPROP])),
    }
    return rows, cumulative


def format_table(rows, cumulative):
    """The experiment as a plain-text table."""
    header = f"{'layer':>5}  {'type':<18} {'|a-b| max':>11} {'|a-c| max':>11} {'cos(a,c)':>9}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['layer']:>5}  {row['type']:<18} {row['max_abs_diff_deconv_vs_autodiff']:>11.3g} "
                     f"{row['max_abs_diff_deconv_vs_backprop']:>11.3g} {row['cosine_deconv_vs_backprop']:>9.4f}")
    lines.append(f"{'input':>5}  {'(whole path)':<18} {cumulative['max_abs_diff_deconv_vs_autodiff']:>11.3g} "
                 f"{cumulative['max_abs_diff_deconv_vs_backprop']:>11.3g} {cumulative['cosine_deconv_vs_backprop']:>9.4f}")
    lines.append("a: DeconvNet reconstruction step, b: autodiff in deconvnet mode, c: autodiff in backprop mode")
    return "\n".join(lines)
