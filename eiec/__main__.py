"""``python -m eiec``: the ``eiec`` command line."""

import os
import sys

try:
    from eiec.cli import entry
except KeyboardInterrupt:  # Ctrl-C while Python is still starting
    words = [word for word in sys.argv[1:2] if word.isidentifier()]
    print(" ".join(["eiec", *words]) + ": interrupted", file=sys.stderr, flush=True)
    os._exit(130)  # at once: Python's shutdown would report the interrupt as a signal death

sys.exit(entry())
