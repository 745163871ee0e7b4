"""eiec: a compiler and cycle-counting emulator for EIE (Han et al., ISCA 2016)."""

from __future__ import annotations

__version__ = "0.1.0"
