"""eiec's cache of what it can rebuild, in ``$XDG_CACHE_HOME/eiec`` (``~/.cache/eiec``).

An entry is a file named by a hash of everything it was made from (see :func:`digest`), so a
changed input, a changed eiec or a changed library never meets a stale entry; the entry holds
that key too, so one renamed or swapped on disk is never taken for another. The cache is never
needed for a correct result: an entry that is missing, truncated, corrupt or not the user's own
is rebuilt, and a cache that cannot be written costs only the rebuild. ``EIEC_NO_CACHE=1`` turns
the pickled entries off (the grammar and training caches keep their own files).
:func:`store_library` and :func:`load_library` keep TVM builds as shared libraries (the
training engine's and ``eiec.byoc.cpu``'s), each beside a stamp naming its key and its bytes'
digest.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from eiec.errors import PathError
from eiec.fileio import write_atomic

#: Default size limit of one kind of pickled entry: the oldest are removed beyond it.
DEFAULT_LIMIT = 256 << 20


def cache_dir() -> Path:
    """Where eiec keeps what it can rebuild: ``$XDG_CACHE_HOME/eiec`` (``~/.cache/eiec``).

    Raises RuntimeError when there is no home directory to be found."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eiec"


def enabled() -> bool:
    """False when ``EIEC_NO_CACHE`` is set to anything but ``""`` or ``0``."""
    return os.environ.get("EIEC_NO_CACHE", "") in ("", "0")


def digest(*parts: bytes | str) -> str:
    """A hex SHA-256 of ``parts``, each length-prefixed so no two sequences collide."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


def files_digest(paths: Iterable[Path]) -> str:
    """A digest of the file names and contents of ``paths`` (e.g. the source files an entry
    depends on), in order of name: not of their folders, so that another checkout or install
    of the same sources shares the entries."""
    ordered = sorted(paths, key=lambda path: path.name)
    return digest(*(p.name for p in ordered), *(p.read_bytes() for p in ordered))


def write_file(path: Path, write: Callable[[IO[bytes]], None]) -> bool:
    """Write ``path`` atomically through ``write(file)`` (``eiec.fileio.write_atomic``, the
    file the user's alone), creating the folder private to the user; False when it cannot be
    written."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, write, private=True)
    except (OSError, PathError):  # a full disk (PathError from write_atomic) costs the entry
        return False
    return True


def read_pickle(kind: str, key: str) -> Any | None:
    """The entry ``key`` of ``kind``, or None when the cache is off or holds no sound entry of
    the user's own. A hit refreshes the entry's time, which eviction goes by."""
    if not enabled():
        return None
    try:
        path = cache_dir() / kind / f"{key}.pickle"
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_uid != os.getuid():
                return None
            # Copy-on-write: arrays are views of the mapped file, writable, read on first use.
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        value = _unpack(memoryview(data), key)
        os.utime(path)
    except Exception:  # missing, truncated, corrupt, or unreadable: the caller rebuilds
        return None
    return value


def write_pickle(kind: str, key: str, value: object, limit: int = DEFAULT_LIMIT) -> None:
    """Store ``value`` as the entry ``key`` of ``kind``, then remove the least recently used
    entries of ``kind`` beyond ``limit`` bytes in all. Does nothing when the cache is off."""
    if not enabled():
        return
    try:
        folder = cache_dir() / kind
    except RuntimeError:  # no home directory
        return
    parts = _pack(value, key)
    size = sum(len(part) for part in parts)
    if size > limit or not write_file(folder / f"{key}.pickle", lambda f: f.writelines(parts)):
        return
    _evict(folder, limit)


#: An entry: this magic, its key's length and the key (what it was made from: an entry renamed or
#: swapped on disk is not taken for another), the pickle's length, the number of out-of-band
#: buffers and each one's length (8-byte little-endian words), the pickle, then each buffer at a
#: 64-byte boundary.
_MAGIC = b"eiec-pk2"
_ALIGN = 64


def _pack(value: object, key: str) -> list[bytes | memoryview]:
    """The parts of the entry ``key``: a protocol-5 pickle whose big arrays travel out of band,
    so that loading maps them instead of copying them."""
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    name = key.encode()
    words = [len(stream), len(raws), *(raw.nbytes for raw in raws)]
    header = (
        _MAGIC
        + len(name).to_bytes(8, "little")
        + name
        + b"".join(n.to_bytes(8, "little") for n in words)
    )
    parts: list[bytes | memoryview] = [header, stream]
    offset = len(header) + len(stream)
    for raw in raws:
        parts.append(bytes(-offset % _ALIGN))
        offset += -offset % _ALIGN
        parts.append(raw)
        offset += raw.nbytes
    return parts


def _unpack(data: memoryview, key: str) -> Any:
    """The value of the entry ``key`` that ``_pack`` made; its arrays are views of ``data``.
    ValueError when ``data`` is not such an entry, or is another key's."""
    if bytes(data[: len(_MAGIC)]) != _MAGIC:
        raise ValueError("not an eiec cache entry")
    at = len(_MAGIC)

    def word() -> int:
        nonlocal at
        at += 8
        return int.from_bytes(data[at - 8 : at], "little")

    size = word()
    if bytes(data[at : at + size]) != key.encode():
        raise ValueError("the entry of another key")
    at += size

    stream_size, count = word(), word()
    sizes = [word() for _ in range(count)]
    stream = data[at : at + stream_size]
    offset = at + stream_size
    buffers = []
    for size in sizes:
        offset += -offset % _ALIGN
        buffers.append(data[offset : offset + size])
        offset += size
    if offset != len(data):
        raise ValueError("a truncated or overlong eiec cache entry")
    return pickle.loads(stream, buffers=buffers)


def _evict(folder: Path, limit: int, pattern: str = "*.pickle") -> None:
    """Remove the oldest ``pattern`` files of ``folder`` (a library with its stamp) until the
    rest fit in ``limit``."""
    try:
        entries = []
        for path in folder.glob(pattern):
            info = path.stat()
            entries.append((info.st_mtime_ns, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= limit:
                break
            path.unlink(missing_ok=True)
            if path.suffix == ".so":
                _stamp(path).unlink(missing_ok=True)
            total -= size
    except OSError:
        pass


def _stamp(path: Path) -> Path:
    """The file beside a cached library that says what it is: its key and its bytes' digest."""
    return path.with_suffix(".sha256")


def load_library(path: Path, key: str) -> Any | None:
    """The TVM build of ``key`` cached at ``path`` (a loaded runtime module), or None when
    there is none or it is not sound: the user's own, its stamp naming ``key`` and the digest
    of its bytes (a truncated, damaged or swapped library is rebuilt, never loaded: loading one
    can crash the process). A hit refreshes the library's time, which
    :func:`store_library`'s eviction goes by."""
    import tvm  # lazy: TVM, only for builds

    try:
        if path.stat().st_uid != os.getuid():
            return None
        stamp = _stamp(path).read_text(encoding="ascii").split()
        data = path.read_bytes()
        if stamp != [key, hashlib.sha256(data).hexdigest()]:
            return None
        module = tvm.runtime.load_module(str(path))
        os.utime(path)
        return module
    except (OSError, ValueError, RuntimeError, tvm.error.InternalError):
        return None


def store_library(executable: Any, path: Path, key: str, limit: int | None = None) -> None:
    """Export the TVM ``executable`` to ``path`` and write its stamp; then, with ``limit``,
    remove the least recently used libraries of the folder beyond ``limit`` bytes in all. A
    cache that cannot be written only costs the next build."""
    import tvm  # lazy: TVM, only for builds

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            temporary = Path(scratch) / path.name
            executable.export_library(str(temporary))
            digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
            os.replace(temporary, path)
        write_file(_stamp(path), lambda file: file.write(f"{key} {digest}\n".encode()))
    except (OSError, RuntimeError, tvm.error.InternalError):
        return
    if limit is not None:
        _evict(path.parent, limit, "*.so")
