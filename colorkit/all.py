"""Star-import convenience for notebooks: ``from colorkit.all import *``. Not used inside the package."""

from . import color, data, evaluate, gan, infer, io, learner, loss, metrics, models, train
from .color import *
from .data import *
from .evaluate import *
from .gan import *
from .infer import *
from .io import *
from .learner import *
from .loss import *
from .metrics import *
from .models import *
from .train import *
