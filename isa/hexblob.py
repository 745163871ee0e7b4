"""Hex blobs: the one-token text form of large integer arrays (isa/SPEC.md, "Lexical structure").

A blob of words has a fixed number of hex digits per word, most significant digit first; a
blob of entries has two digits per entry, v then z. ``-`` is the empty blob. All conversions are
vectorised (one numpy pass over the digits), so a blob of millions of digits costs milliseconds.
"""

from __future__ import annotations

import numpy as np

EMPTY = "-"

_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: ASCII code -> digit value; 255 marks a character that is not a hex digit.
_VALUE = np.full(256, 255, dtype=np.uint8)
_VALUE[_DIGITS] = np.arange(16, dtype=np.uint8)
_VALUE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)


class BlobError(ValueError):
    """A blob that is not hex, or whose length is not a whole number of items.

    ``offset`` is the index of the offending character (or of the blob's end for a length
    error), so callers can report a column.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _nibbles(blob: str, digits: int, items: str) -> np.ndarray:
    """The digit values of ``blob``, shape (items, digits)."""
    if blob == EMPTY:
        return np.zeros((0, digits), dtype=np.uint8)
    try:
        raw = np.frombuffer(blob.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as error:
        raise BlobError(f"{blob[error.start]!r} is not a hex digit", error.start) from None
    values = _VALUE[raw]
    bad = np.flatnonzero(values == 255)
    if bad.size:
        offset = int(bad[0])
        raise BlobError(f"{blob[offset]!r} is not a hex digit", offset)
    if raw.size % digits:
        raise BlobError(
            f"{raw.size} hex digits are not a whole number of {items} ({digits} digits each)",
            raw.size,
        )
    return values.reshape(-1, digits)


def _bytes(blob: str, digits: int) -> np.ndarray | None:
    """The bytes a blob of whole bytes spells, or None (empty, odd, or not plain hex: the
    digit-by-digit path then decodes it or says where it is wrong)."""
    if digits % 2 or len(blob) % digits or blob == EMPTY:
        return None
    try:
        packed = bytes.fromhex(blob)
    except ValueError:
        return None
    if 2 * len(packed) != len(blob):  # fromhex skips whitespace, which a blob never holds
        return None
    return np.frombuffer(packed, dtype=np.uint8)


def decode_words(
    blob: str, digits: int, *, signed: bool = False, items: str = "words"
) -> np.ndarray:
    """The int64 words of a blob with ``digits`` hex digits per word (two's complement if
    ``signed``)."""
    packed = _bytes(blob, digits) if digits <= 16 else None
    if packed is not None:
        words = packed.view(f">u{digits // 2}").astype(np.int64)
    else:
        nibbles = _nibbles(blob, digits, items).astype(np.int64)
        weights = np.left_shift(1, 4 * np.arange(digits - 1, -1, -1, dtype=np.int64))
        words = nibbles @ weights
    if signed:
        half = 1 << (4 * digits - 1)
        words = np.where(words >= half, words - 2 * half, words)
    return words


def encode_words(words: np.ndarray, digits: int) -> str:
    """The blob of ``words`` (ints in ``[-16**digits / 2, 16**digits)``; negative ones in two's
    complement) with ``digits`` hex digits per word."""
    words = np.asarray(words, dtype=np.int64).ravel()
    if words.size == 0:
        return EMPTY
    shifts = 4 * np.arange(digits - 1, -1, -1, dtype=np.int64)
    nibbles = (words[:, None] >> shifts) & 0xF
    return _DIGITS[nibbles].tobytes().decode("ascii")


def decode_entries(blob: str) -> tuple[np.ndarray, np.ndarray]:
    """The (v, z) nibbles, as uint8 arrays, of a blob of entries."""
    packed = _bytes(blob, 2)
    if packed is not None:
        return packed >> 4, packed & 0xF
    pairs = _nibbles(blob, 2, "entries")
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def encode_entries(v: np.ndarray, z: np.ndarray) -> str:
    """The blob of entries (v, z), each a nibble."""
    if v.size == 0:
        return EMPTY
    packed = (np.asarray(v, dtype=np.uint8) << 4) | np.asarray(z, dtype=np.uint8)
    return packed.tobytes().hex()
