"""Host tensors <-> activation buffers: validation of inputs, quantisation, output read-back."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from eiec.emulator.stats import Stats
from eiec.errors import InputError
from eiec.isa.program import WORD_MAX, Buffer, Port, Program


def data_words(buffer: Buffer) -> np.ndarray:
    """Flat word indices of a buffer's data words, row by row (pitch padding skipped)."""
    rows = np.arange(buffer.rows, dtype=np.int64)[:, None] * buffer.pitch
    return (rows + np.arange(buffer.cols, dtype=np.int64)[None, :]).ravel()


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_dtype_and_values(port: Port, array: np.ndarray, where: str) -> None:
    """A numeric dtype and only finite values (the first bad index is named)."""
    if array.dtype.kind not in "fiub":
        raise InputError(
            f"input {port.name!r} has dtype {array.dtype}, not a real number type",
            where=where,
            fix="give a float32 (or other float/int) array",
        )
    check_finite(array, f"input {port.name!r}", where, fix="replace NaN/Inf before emulating")


def check_finite(array: np.ndarray, label: str, where: str, fix: str) -> None:
    """Raise InputError naming the first NaN/Inf of a float array (``label``: what it is)."""
    if array.dtype.kind != "f":
        return
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{label} has {array[index]} at index {index}; inputs must be finite "
            f"({int(bad.sum())} value(s) are NaN or Inf)",
            where=where,
            fix=fix,
        )


def batch_size(port: Port, array: np.ndarray, where: str) -> int | None:
    """The batch size of ``array`` for ``port``: None when it has exactly the port's shape,
    B when it is the port's shape with B samples along the port's batch axis."""
    shape = tuple(array.shape)
    if shape == port.shape:
        return None
    axis = port.batch_axis
    if axis is not None and len(shape) == len(port.shape):
        others = shape[:axis] + shape[axis + 1 :]
        if others == port.shape[:axis] + port.shape[axis + 1 :]:
            if shape[axis] == 0:
                raise InputError(
                    f"input {port.name!r} has shape {_shape(shape)}: an empty batch (no samples "
                    f"along axis {axis})",
                    where=where,
                    fix="give at least one sample",
                )
            return shape[axis]
    raise InputError(_shape_message(port, shape), where=where, fix=_shape_fix(port))


def check_shape(port: Port, array: np.ndarray, where: str) -> None:
    """Exactly the port's shape (one sample)."""
    if tuple(array.shape) != port.shape:
        raise InputError(
            _shape_message(port, tuple(array.shape)), where=where, fix=_shape_fix(port)
        )


def _shape_message(port: Port, got: tuple[int, ...]) -> str:
    return f"input {port.name!r} has shape {_shape(got)}, expected {_shape(port.shape)}"


def _shape_fix(port: Port) -> str:
    if port.batch_axis is None:
        return "reshape the array to the port's shape (this port has no batch axis)"
    return (
        f"reshape the array to the port's shape; a batch of B samples along axis "
        f"{port.batch_axis} (size B instead of 1) is also accepted"
    )


def check_names(program: Program, inputs: Mapping[str, object]) -> None:
    """Every input port given, no unknown names."""
    names = [port.name for port in program.inputs]
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InputError(
            f"unknown input {unknown[0]!r}",
            where=program.source,
            fix=f"the program's inputs are: {', '.join(names) or 'none'}",
        )
    for name in names:
        if name not in inputs:
            raise InputError(
                f"missing input {name!r}",
                where=program.source,
                fix=f"give every input: {', '.join(names)}",
            )


def check_inputs(program: Program, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One sample per input port: every port given, no unknown names, shapes exact, finite."""
    check_names(program, inputs)
    checked = {}
    for port in program.inputs:
        array = np.asarray(inputs[port.name])
        check_dtype_and_values(port, array, program.source)
        check_shape(port, array, program.source)
        checked[port.name] = array
    return checked


def check_lane_inputs(
    program: Program, inputs: Mapping[str, np.ndarray], count: int | None = None
) -> int:
    """The number of lanes of a lockstep batch's ``inputs`` (by port: lanes x the port's
    shape; ``count``, if given, or for a program without inputs), checked as
    :func:`check_inputs` checks one sample's (a bad value's index then starts with its
    lane)."""
    check_names(program, inputs)
    lanes = set() if count is None else {count}
    for port in program.inputs:
        array = np.asarray(inputs[port.name])
        if array.ndim == 0 or tuple(array.shape[1:]) != port.shape:
            raise InputError(
                f"input {port.name!r} has shape {_shape(tuple(array.shape))}, expected lanes "
                f"x {_shape(port.shape)}",
                where=program.source,
                fix="stack one sample of the port's shape per lane",
            )
        check_dtype_and_values(port, array, program.source)
        lanes.add(array.shape[0])
    if len(lanes) != 1 or 0 in lanes:
        raise InputError(
            f"the inputs have {sorted(lanes)} lanes",
            where=program.source,
            fix="give every input the same number of samples, at least one",
        )
    return lanes.pop()


def clamped_inputs(program: Program, runs: Sequence[Stats]) -> list[str]:
    """One sentence per input port whose host values were clamped to its buffer's range over
    ``runs`` (the emulator's input saturation events): the outputs are those of other inputs."""
    return clamped_sentences(program, input_clamps(runs), len(runs))


def input_clamps(runs: Sequence[Stats]) -> dict[str, int]:
    """Clamped host values per input port over ``runs``, in order of first clamp."""
    counts: dict[str, int] = {}
    for stats in runs:
        for event in stats.saturation_events:
            if "input" in event:
                counts[event["input"]] = counts.get(event["input"], 0) + int(event["count"])
    return counts


def clamped_sentences(program: Program, counts: Mapping[str, int], runs: int) -> list[str]:
    """:func:`clamped_inputs` from the counts of :func:`input_clamps` over ``runs`` runs."""
    ports = {port.name: port for port in program.inputs}
    sentences = []
    for name, count in counts.items():
        port = ports.get(name)
        size = math.prod(port.shape) * runs if port is not None else None
        of = f" of {size}" if size else ""
        limit = ""
        if port is not None and port.buffer in program.buffers:
            frac = program.buffers[port.buffer].frac
            limit = f" (+-{WORD_MAX * 2.0**-frac:.4g}, the format of {frac} fraction bits)"
        sentences.append(
            f"input {name!r}: {count}{of} values are beyond its 16-bit buffer's range{limit} "
            "and were clamped, so the outputs are those of other inputs"
        )
    return sentences


#: How to avoid clamped inputs (the fix of :func:`clamped_inputs`' messages).
CLAMPED_FIX = (
    "compile with --calibration on representative inputs or a larger --input-range, or scale "
    "the inputs (e.g. images to [0, 1])"
)


#: Instructions whose saturations are part of their definition: ``broadcast-activation``
#: clamps the constant ``#1`` in formats of 15 or more fraction bits (isa/SPEC.md).
BY_DESIGN = frozenset({"broadcast-activation"})


def saturated_words(runs: Sequence[Stats]) -> str | None:
    """A sentence on the words clamped inside the program over ``runs`` (writebacks and
    element-wise results beyond their buffer's range), or None when there were none."""
    events = [
        event
        for stats in runs
        for event in stats.saturation_events
        if "pc" in event and event.get("instruction") not in BY_DESIGN
    ]
    if not events:
        return None
    count = sum(int(event["count"]) for event in events)
    first = min(events, key=lambda event: int(event["pc"]))
    return (
        f"{count} values computed by the program saturated (the first at instruction "
        f"{first['pc']}, {first['instruction']}): they were beyond their buffer's 16-bit range "
        "and were clamped, so the outputs computed from them are not the model's"
    )


#: How to avoid words saturating inside the program (the fix of :func:`saturated_words`).
SATURATED_FIX = (
    "compile with --calibration on representative inputs; eiec verify names the outputs they reach"
)


def saturation_warnings(program: Program, runs: Sequence[Stats]) -> list[tuple[str, str]]:
    """(what, how to fix) per saturation over ``runs``: each clamped input port
    (:func:`clamped_inputs`), then the words clamped inside the program
    (:func:`saturated_words`)."""
    found = [(sentence, CLAMPED_FIX) for sentence in clamped_inputs(program, runs)]
    inside = saturated_words(runs)
    if inside is not None:
        found.append((inside, SATURATED_FIX))
    return found
