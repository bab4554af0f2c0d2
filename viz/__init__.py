"""The paper's methods and what a person looks at."""
from .class_model import ClassModel, class_model, stuck_classes
from .crops import crop_boxes
from .deconvnet import compare_deconvnet, deconv_reconstruction
from .images import ImageError, load_image, resize_short_side, working_image
from .localise import Localisation, localise, localise_from_saliency
from .render import heatmap, montage, overlay
from .saliency import class_scores, classify, saliency, saliency_maps

__all__ = ["ImageError", "load_image", "resize_short_side", "working_image", "crop_boxes",
           "class_scores", "classify", "saliency", "saliency_maps", "class_model", "ClassModel", "stuck_classes",
           "localise", "localise_from_saliency", "Localisation", "deconv_reconstruction",
           "compare_deconvnet", "heatmap", "overlay", "montage"]
