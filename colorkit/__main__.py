"""``python -m colorkit``: the ``colorkit`` command line (see :mod:`colorkit.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
