"""colorkit: colorize black-and-white photographs with fastai.

>>> from colorkit import colorize_dls, colorize_learner
>>> learn = colorize_learner(colorize_dls("photos/"), pretrained=False)
>>> learn.colorize("grandpa_1932.jpg")          # PIL image, same size as the input

Importing the package attaches ``Learner.colorize`` and ``Learner.save_colorizer``.
"""

__version__ = "0.1.0"

from .color import lab_to_rgb, rgb_to_lab, to_gray  # noqa: E402
from .data import colorize_block, colorize_dls  # noqa: E402
from .infer import colorize_image, colorize_images  # noqa: E402
from .io import ImageLoadError, find_images, load_image, save_image  # noqa: E402
from .learner import Colorizer, colorize_learner, load_colorizer, save_colorizer  # noqa: E402
from .loss import FeatureLoss, vgg16_feature_loss  # noqa: E402
from .models import WeightsUnavailableError, create_generator  # noqa: E402
from .train import DEFAULT_STAGES, Stage, fit_progressive  # noqa: E402

__all__ = [
    "__version__",
    "Colorizer",
    "DEFAULT_STAGES",
    "FeatureLoss",
    "ImageLoadError",
    "Stage",
    "WeightsUnavailableError",
    "colorize_block",
    "colorize_dls",
    "colorize_image",
    "colorize_images",
    "colorize_learner",
    "create_generator",
    "find_images",
    "fit_progressive",
    "lab_to_rgb",
    "load_colorizer",
    "load_image",
    "rgb_to_lab",
    "save_colorizer",
    "save_image",
    "to_gray",
    "vgg16_feature_loss",
]
