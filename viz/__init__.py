"""The paper's methods and what a person looks at."""
from .crops import crop_boxes
from .images import ImageError, load_image, resize_short_side, working_image
from .render import heatmap, overlay
from .saliency import class_scores, saliency, saliency_details

__all__ = ["ImageError", "load_image", "resize_short_side", "working_image", "crop_boxes",
           "class_scores", "saliency", "saliency_details", "heatmap", "overlay"]
