"""Program names of layers: ISA identifiers made from ONNX node and tensor names."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


def identifier(text: str, fallback: str) -> str:
    """``text`` made into an ISA identifier (``[A-Za-z_][A-Za-z0-9_.]*``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.]", "_", text.strip("/").replace("/", ".")).strip(".")
    if not cleaned:
        return fallback
    if not _IDENTIFIER.match(cleaned):
        cleaned = f"{fallback}_{cleaned}"
    return cleaned
