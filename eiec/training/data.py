"""Training data: ``DATA.npz`` with ``x`` (samples stacked along the model's batch axis, as
``--calibration`` takes them) and optionally ``y`` (integer class labels, one per sample).

:func:`load_training_data` reads and checks the file; :class:`TrainingData` holds the samples
batch-first, splits off a held-out part and yields shuffled fixed-size batches (shapes are
static: the last partial batch of an epoch is dropped, that of an evaluation padded).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eiec.errors import InputError


@dataclass(frozen=True)
class TrainingData:
    """Samples batch-first: ``x`` (N, *sample shape) float32, ``y`` (N,) int64 labels or None,
    ``teacher`` (N, F) the original model's outputs (distillation targets) or None."""

    x: np.ndarray
    y: np.ndarray | None
    teacher: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: np.ndarray) -> TrainingData:
        """The samples at ``index``."""
        return TrainingData(
            self.x[index],
            None if self.y is None else self.y[index],
            None if self.teacher is None else self.teacher[index],
        )

    def split(self, held_out: float, seed: int) -> tuple[TrainingData, TrainingData]:
        """(training part, held-out part): a seeded random ``held_out`` fraction held out
        (at least one sample on each side)."""
        order = np.random.default_rng(seed).permutation(len(self))
        count = min(max(1, round(held_out * len(self))), len(self) - 1)
        return self.subset(np.sort(order[count:])), self.subset(np.sort(order[:count]))

    def batches(self, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Indices of the shuffled full batches of one epoch."""
        order = rng.permutation(len(self))
        for start in range(0, len(self) - batch + 1, batch):
            yield order[start : start + batch]


def load_training_data(
    path: str | Path, sample_shape: tuple[int, ...], batch_axis: int | None, classes: int | None
) -> TrainingData:
    """Read ``path`` (see the module docstring) for a model input of ``sample_shape`` (its
    shape without the batch axis). ``classes``: the model's output width, which labels must be
    below (None when the output is not a class score vector)."""
    where = str(path)
    fix = "write it with numpy.savez(path, x=samples, y=labels) (y is optional)"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("no such file", where=where, fix=fix) from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"not a .npz archive ({error})", where=where, fix=fix) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError("a .npy file, not a .npz archive", where=where, fix=fix)
    with archive:
        arrays = {}
        for name in archive.files:
            try:
                arrays[name] = np.asarray(archive[name])
            except ValueError:  # numpy refuses object arrays without pickle
                raise InputError(
                    f"array '{name}' holds Python objects (dtype object), which eiec does not "
                    "read (it would need pickle)",
                    where=where,
                    fix=f"save numbers: numpy.savez(path, {name}=array.astype(np.float32)) (y as "
                    "integers)",
                ) from None
    return check_training_arrays(arrays, sample_shape, batch_axis, classes, where)


def check_training_arrays(
    arrays: Mapping[str, np.ndarray],
    sample_shape: tuple[int, ...],
    batch_axis: int | None,
    classes: int | None,
    where: str,
) -> TrainingData:
    """:class:`TrainingData` from ``{"x": ..., "y": ...}`` (``y`` optional), checked as
    :func:`load_training_data` describes."""
    fix = "write it with numpy.savez(path, x=samples, y=labels) (y is optional)"
    if "x" not in arrays:
        raise InputError(
            f"no array 'x' (there is {', '.join(sorted(arrays)) or 'none'})", where=where, fix=fix
        )
    unknown = sorted(set(arrays) - {"x", "y"})
    if unknown:
        raise InputError(f"unexpected arrays {', '.join(unknown)}", where=where, fix=fix)
    x = _samples(np.asarray(arrays["x"]), sample_shape, batch_axis, where)
    y = arrays.get("y")
    if y is not None:
        y = _labels(np.asarray(y), len(x), classes, where)
    return TrainingData(x, y)


def check_same_kind(
    train: TrainingData, validation: TrainingData, train_name: str, where: str
) -> None:
    """InputError unless both sets have labels or neither has (what the held-out figures
    measure, accuracy or output error, must be what training optimises)."""
    if (train.y is None) != (validation.y is None):
        has, lacks = (train_name, where) if validation.y is None else (where, train_name)
        raise InputError(
            f"{has} has labels (y) but {lacks} has none",
            where=where,
            fix="give labels in both files, or in neither",
        )


def _samples(
    x: np.ndarray, sample_shape: tuple[int, ...], batch_axis: int | None, where: str
) -> np.ndarray:
    rank = len(sample_shape) + 1
    dims = [str(d) for d in sample_shape]
    if batch_axis is not None:
        dims.insert(batch_axis, "N")
    expected = f"[{', '.join(dims)}]"
    if batch_axis is None or x.ndim != rank:
        raise InputError(
            f"x has shape {list(x.shape)}; the model takes samples {expected}",
            where=where,
            fix="stack the samples along the model input's batch axis",
        )
    x = np.moveaxis(x, batch_axis, 0)
    if tuple(x.shape[1:]) != tuple(sample_shape) or x.shape[0] < 2:
        raise InputError(
            f"x has shape {list(np.moveaxis(x, 0, batch_axis).shape)}; the model takes "
            f"samples {expected} (at least 2)",
            where=where,
            fix="stack the samples along the model input's batch axis",
        )
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise InputError("x holds non-numbers, NaN or infinity", where=where)
    return np.ascontiguousarray(x, dtype=np.float32)


def _labels(y: np.ndarray, count: int, classes: int | None, where: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != count:
        raise InputError(
            f"y has shape {list(y.shape)}; it needs one label per sample ({count})", where=where
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(
            f"y has dtype {y.dtype}; labels are integer class indices",
            where=where,
            fix="store y as integers, or leave y out to train against the model's own outputs",
        )
    if classes is None:
        raise InputError(
            "labels need a model with one output of class scores (batch, classes)",
            where=where,
            fix="leave y out to train against the model's own outputs (distillation)",
        )
    if y.min() < 0 or y.max() >= classes:
        raise InputError(
            f"labels range over [{int(y.min())}, {int(y.max())}]; the model has {classes} classes",
            where=where,
        )
    return y.astype(np.int64)
