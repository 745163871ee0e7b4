"""Programs loaded from ``.eie`` files for the emulator, with their layer tables, cached.

Parsing and verifying a big program and building its layer tables take longer than running
it once. :func:`load_image` keeps what they produce in eiec's cache (``eiec.isa.cache``, kind
``programs``), keyed by the path as given, the file's text and the source of the code that
made it (the ISA package, the grammar, the layer tables, lark, numpy and Python versions), so a
second run of the same file reads one file instead. A changed file or a changed eiec is a new
key; ``EIEC_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eiec import isa
from eiec.emulator import layers
from eiec.emulator.layers import LayerTables, program_tables
from eiec.isa import cache
from eiec.isa.program import Program

#: The cache kind of loaded programs.
KIND = "programs"


@dataclass(frozen=True)
class Image:
    """A verified program and the tables the emulator builds for each of its layers."""

    program: Program
    tables: Mapping[str, LayerTables]

    @classmethod
    def of(cls, program: Program) -> Image:
        """Build the layer tables of ``program``."""
        return cls(program=program, tables=program_tables(program))


def load_image(path: str | Path) -> Image:
    """The program at ``path``, parsed and verified, with its layer tables; from the cache
    when this file's text was loaded before by the same code (IsaError, as ``eiec.isa.load``,
    when the file cannot be read, parsed or verified)."""
    source = str(path)
    data = isa.read_bytes(path)
    key = cache.digest(_code_digest(), source, data)
    hit = cache.read_pickle(KIND, key)
    if isinstance(hit, Image):
        return hit
    image = Image.of(isa.load_bytes(data, source))
    cache.write_pickle(KIND, key, image)
    return image


@functools.cache
def _code_digest() -> str:
    """A digest of what an image depends on besides the text: the ISA package's sources and
    grammar, this module and the layer tables', lark's (its version included), numpy's version
    and Python's."""
    package = Path(isa.__file__).parent
    files = [*package.glob("*.py"), *package.glob("*.lark"), Path(__file__), Path(layers.__file__)]
    spec = importlib.util.find_spec("lark")
    if spec is not None and spec.origin is not None:
        files.append(Path(spec.origin))
    return cache.digest(cache.files_digest(files), np.__version__, sys.version)
