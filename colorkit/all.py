"""Star-import convenience for notebooks: ``from colorkit.all import *``. Not used inside the package.

Imports every library module (so it loads torch and fastai); the command line (:mod:`colorkit.cli`) is left out.
"""

from . import (
    archs,
    cgan,
    color,
    critics,
    data,
    evaluate,
    gan,
    gan_callbacks,
    infer,
    io,
    learner,
    loss,
    metrics,
    modelcard,
    models,
    nogan,
    pipeline,
    presets,
    recipes,
    report,
    samples,
    train,
    transforms,
)
from .archs import *
from .cgan import *
from .color import *
from .critics import *
from .data import *
from .evaluate import *
from .gan_callbacks import *
from .infer import *
from .io import *
from .learner import *
from .loss import *
from .metrics import *
from .modelcard import *
from .models import *
from .nogan import *
from .pipeline import *
from .presets import *
from .recipes import *
from .report import *
from .samples import *
from .train import *
from .transforms import *
