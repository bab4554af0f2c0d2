"""The crops a ConvNet is evaluated on (Krizhevsky et al.; Sect. 3.1 of the paper)."""
from ..engine import InputError


def crop_boxes(height, width, size, count):
    """(top, left, mirrored) for 1 crop (the centre) or 10 (4 corners and the centre, then
    the same five mirrored horizontally)."""
    if size > min(height, width):
        raise InputError(f"a {size}x{size} crop does not fit a {height}x{width} image")
    centre = ((height - size) // 2, (width - size) // 2)
    if count == 1:
        return [(*centre, False)]
    if count != 10:
        raise InputError(f"crops must be 1 or 10, got {count}")
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size), centre]
    return [(top, left, mirrored) for mirrored in (False, True) for top, left in corners]


def extract(image, box, size):
    top, left, mirrored = box
    crop = image[top : top + size, left : left + size]
    return crop[:, ::-1] if mirrored else crop
