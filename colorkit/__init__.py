"""colorkit: colorize black-and-white photographs with fastai.

>>> from colorkit import colorize_dls, colorize_learner
>>> learn = colorize_learner(colorize_dls("photos/"), pretrained=False)
>>> learn.colorize("grandpa_1932.jpg")          # PIL image, same size as the input

Every public name below is importable from here. ``import colorkit`` is cheap: each name is loaded from
its module on first use (PEP 562), so the command line starts at once and only what a program uses pulls
in torch and fastai. Loading ``colorize_learner`` (or any module that builds or loads a generator)
attaches ``Learner.colorize``, ``Learner.save_colorizer`` and ``Learner.fit_progressive``.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings as _warnings
from typing import Any

__version__ = "0.1.0"

# fastai's import-time use of torch.jit.script warns on every start with torch >= 2.10; it is not ours to fix.
_warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

# public name -> the module that owns it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["lab_to_rgb", "rgb_to_lab", "to_gray"], "color"),
    **dict.fromkeys(["colorize_block", "colorize_dls"], "data"),
    **dict.fromkeys(["evaluate", "evaluate_predictions"], "evaluate"),
    **dict.fromkeys(["EvalResult", "format_table", "write_report"], "report"),
    **dict.fromkeys(["create_critic"], "critics"),
    **dict.fromkeys(["critic_learner", "gan_finetune", "nogan", "render_generated", "train_gan"], "nogan"),
    **dict.fromkeys(["colorize_image", "colorize_images"], "infer"),
    **dict.fromkeys(["ImageLoadError", "find_images", "load_image", "save_image"], "io"),
    **dict.fromkeys(["Colorizer", "colorize_learner", "load_colorizer", "save_colorizer"], "learner"),
    **dict.fromkeys(["FeatureLoss", "vgg16_feature_loss"], "loss"),
    **dict.fromkeys(["ciede2000", "colorfulness", "colorfulness_gap", "colorize_metrics", "psnr", "ssim"], "metrics"),
    **dict.fromkeys(["ModelCard"], "modelcard"),
    **dict.fromkeys(["WeightsUnavailableError", "build_generator", "create_generator", "register_generator"],
                    "models"),
    **dict.fromkeys(["ColorizeSummary", "colorize_files"], "pipeline"),
    **dict.fromkeys(["DEFAULT_STAGES", "Stage", "fit_progressive", "train_colorizer"], "train"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """``colorkit.evaluate`` and ``colorkit.nogan`` are both functions (exported here) and submodules. Importing
    a submodule would set the package attribute to the module; the function keeps the name, as it did when
    this package imported everything eagerly. ``import colorkit.evaluate`` and ``from colorkit.evaluate
    import ...`` still find the module in ``sys.modules``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
