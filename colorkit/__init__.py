"""colorkit: colorize black-and-white photographs with fastai.

>>> from colorkit import colorize_dls, colorize_learner
>>> learn = colorize_learner(colorize_dls("photos/"), pretrained=False)
>>> learn.colorize("grandpa_1932.jpg")          # PIL image, same size as the input

Importing the package attaches ``Learner.colorize`` and ``Learner.save_colorizer``.
"""

__version__ = "0.1.0"

import warnings as _warnings

# fastai's import-time use of torch.jit.script warns on every start with torch >= 2.10; it is not ours to fix.
_warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

from .color import lab_to_rgb, rgb_to_lab, to_gray  # noqa: E402
from .data import colorize_block, colorize_dls  # noqa: E402
from .evaluate import EvalResult, evaluate, evaluate_predictions, format_table, write_report  # noqa: E402
from .gan import create_critic, critic_learner, gan_finetune, nogan, render_generated, train_gan  # noqa: E402
from .infer import colorize_image, colorize_images  # noqa: E402
from .io import ImageLoadError, find_images, load_image, save_image  # noqa: E402
from .learner import Colorizer, colorize_learner, load_colorizer, save_colorizer  # noqa: E402
from .loss import FeatureLoss, vgg16_feature_loss  # noqa: E402
from .metrics import ciede2000, colorfulness, colorfulness_gap, colorize_metrics, psnr, ssim  # noqa: E402
from .models import WeightsUnavailableError, create_generator  # noqa: E402
from .train import DEFAULT_STAGES, Stage, fit_progressive  # noqa: E402

__all__ = [
    "__version__",
    "Colorizer",
    "EvalResult",
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
    "ciede2000",
    "colorfulness",
    "colorfulness_gap",
    "colorize_metrics",
    "create_critic",
    "create_generator",
    "critic_learner",
    "evaluate",
    "evaluate_predictions",
    "find_images",
    "format_table",
    "gan_finetune",
    "fit_progressive",
    "lab_to_rgb",
    "load_colorizer",
    "load_image",
    "nogan",
    "psnr",
    "render_generated",
    "rgb_to_lab",
    "save_colorizer",
    "save_image",
    "ssim",
    "to_gray",
    "train_gan",
    "vgg16_feature_loss",
    "write_report",
]
