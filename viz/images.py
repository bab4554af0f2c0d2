"""Reading images and turning them into network inputs, following a model's metadata.

Limits, checked from the file's header before any pixel is decoded (an image is resized
so that its short side is the model's image size, so a long thin image would blow up):
at most $DEEPINSIDE_MAX_IMAGE_PIXELS pixels (default 64 M) and a long side at most
$DEEPINSIDE_MAX_ASPECT_RATIO times the short one (default 16).
"""
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..engine import InputError
from ..engine.errors import limit, regular_file

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_ASPECT_RATIO = 16
# What Pillow's decoders raise on damaged or hostile files.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
                 ZeroDivisionError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class ImageError(InputError):
    """An image that cannot be used; the message names it and the problem."""


def check_image_size(name, width, height):
    """Refuses an image whose size would exhaust memory once decoded or resized."""
    pixels, ratio = limit("MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS), limit("MAX_ASPECT_RATIO", DEFAULT_MAX_ASPECT_RATIO)
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image is empty ({width}x{height})")
    if width * height > pixels:
        raise ImageError(f"{name}: refused, {width}x{height} is more than {pixels} pixels "
                         "(raise $DEEPINSIDE_MAX_IMAGE_PIXELS to allow it)")
    if max(width, height) > ratio * min(width, height):
        raise ImageError(f"{name}: refused, {width}x{height} has a long side more than {ratio} times its short side "
                         "(raise $DEEPINSIDE_MAX_ASPECT_RATIO to allow it)")


def load_image(source):
    """An RGB float32 array (H, W, 3) in [0, 255] from a path or an array.

    Applies the EXIF orientation; converts grayscale, palette, RGBA, CMYK, 16-bit and float
    images to RGB; takes the first frame of an animation; refuses special files, images
    over the size limits and images holding NaN or infinite values.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    name = regular_file(source, "image file", ImageError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(name) as image:
                check_image_size(name, *image.size)
                image.seek(0)
                image = ImageOps.exif_transpose(image)
                rgb = _to_rgb(image)
    except DECODE_ERRORS as error:
        raise ImageError(f"{name}: not a readable image ({error})") from None
    if not np.isfinite(rgb).all():
        raise ImageError(f"{name}: the image holds NaN or infinite values")
    return rgb


def _to_rgb(image):
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        peak = 65535.0 if finite.size and finite.max() > 255 else 255.0
        if image.mode == "F" and finite.size and finite.max() <= 1.0:
            peak = 1.0  # a float image in [0, 1]
        gray = (values / peak * 255).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _from_array(array):
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    check_image_size("the image array", array.shape[1], array.shape[0])
    if not np.isfinite(array).all():
        raise ImageError("the image array holds non-finite values")
    return np.ascontiguousarray(array[..., :3], dtype=np.float32)


def resize_short_side(image, size):
    """Resizes so that the shorter side is `size` (bilinear, antialiased)."""
    height, width = image.shape[:2]
    if min(height, width) == size:
        return image
    scale = size / min(height, width)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    channels = [Image.fromarray(image[..., c]).resize(new_size, Image.BILINEAR) for c in range(3)]
    return np.stack([np.asarray(c, dtype=np.float32) for c in channels], axis=2)


def working_image(model, image):
    """The image the methods work on: resized so its short side is the model's image_size,
    unless it already is exactly the network's input size."""
    image = load_image(image)
    if image.shape[0] == image.shape[1] == model.input_size:
        return image
    return resize_short_side(image, model.image_size)


def to_input(model, crops):
    """Stacks HxWx3 crops into a (N, 3, H, W) float32 batch of (crop - mean) / std."""
    batch = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32)
    mean = np.asarray(model.mean, np.float32)
    std = np.asarray(model.std, np.float32).reshape(3, 1, 1)
    return (batch - (mean.reshape(3, 1, 1) if mean.ndim == 1 else mean)) / std
