"""Reading images and turning them into network inputs, following a model's metadata."""
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..engine import InputError


class ImageError(InputError):
    """An image that cannot be used; the message names it and the problem."""


def load_image(source):
    """An RGB float32 array (H, W, 3) in [0, 255] from a path or an array.

    Applies the EXIF orientation; converts grayscale, palette, RGBA, CMYK and 16-bit images
    to RGB; takes the first frame of an animation; refuses decompression bombs.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    name = str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(name) as image:
                image.seek(0)
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: refused, too many pixels (decompression bomb limit "
                         f"{Image.MAX_IMAGE_PIXELS} pixels)") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: not a readable image ({error})") from None


def _to_rgb(image):
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max() > 255 else 255.0
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
