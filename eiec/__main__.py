"""``python -m eiec``: the ``eiec`` command line."""

import sys

from eiec.cli import main

sys.exit(main())
