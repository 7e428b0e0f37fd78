"""The package itself: a cheap ``import colorkit`` (names load from their modules on first use), every name in
``__all__`` importable, and the functions that share a name with a module stay functions."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import colorkit

REPO = Path(__file__).resolve().parents[1]


def test_import_colorkit_loads_neither_torch_nor_fastai():
    code = "import sys, colorkit; print(sorted(m for m in ('torch', 'fastai', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out


def test_every_public_name_resolves_from_its_module():
    for name in colorkit.__all__:
        value = getattr(colorkit, name)
        if name != "__version__":
            module = importlib.import_module(f"colorkit.{colorkit._EXPORTS[name]}")
            assert value is getattr(module, name), name
            assert name in module.__all__, f"{module.__name__}.__all__ lacks {name}"
    assert set(colorkit.__all__) <= set(dir(colorkit))


def test_functions_named_like_modules_stay_functions():
    importlib.import_module("colorkit.evaluate")  # the submodules are loaded ...
    importlib.import_module("colorkit.nogan")
    from colorkit import evaluate, nogan  # ... and the package names are still the functions

    assert callable(evaluate) and evaluate.__module__ == "colorkit.evaluate"
    assert callable(nogan) and nogan.__module__ == "colorkit.nogan"


def test_learner_methods_attach_with_the_learner():
    code = ("from colorkit import colorize_learner\nfrom fastai.learner import Learner\n"
            "print(all(hasattr(Learner, m) for m in ('colorize', 'save_colorizer', 'fit_progressive')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True", out


def test_old_gan_names_still_import():
    from colorkit.gan import critic_learner, gan_finetune, nogan, render_generated, spectral_critic, train_gan

    assert nogan.__module__ == "colorkit.nogan" and spectral_critic.__module__ == "colorkit.critics"
    assert callable(critic_learner) and callable(gan_finetune) and callable(render_generated)
    assert callable(train_gan)
