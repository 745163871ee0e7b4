"""A CPU schedule for the matmuls of the training graph (TVM 0.27's CPU pipeline has none).

``tvm.s_tir.dlight.cpu`` ships rules for GEMV and reductions only, so without a schedule a
training step's matmuls (the forward ``x @ W``, ``dW = x^T @ dy`` and ``dx = dy @ W^T``) run
as naive triple loops. :class:`Matmul` is a dlight ``ScheduleRule`` for any fused PrimFunc whose
one reduction block has two or more spatial loops and one reduction loop (epilogues such as
bias add and ReLU are inlined into it or computed per tile):

- the output's last axis ``j`` is tiled by up to twice the target's float32 vector lanes
  (32 on AVX-512) and vectorised, the other spatial axes fused and tiled by 4 rows (not tiled
  when their extent is symbolic, e.g. a module taking any number of rows), the reduction ``k``
  blocked by up to 64; tiles are divisors of their loops (no predicated tails: a 300-wide
  layer gets 20-wide vectors);
- the outer tile loop runs in parallel over the cores (``Matmul(parallel=False)``: on one);
  epilogues are computed per tile.

Each output element is still summed over ``k`` in ascending order from zero, one rounding per
product and per addition (no reduction is split into partial sums), so a function scheduled by
:class:`Matmul` alone computes the same bits as TVM's unscheduled loops
(``tests/byoc/test_cpu.py`` checks it).

The legalised training graph transposes explicitly, so its matmuls all read ``B[k, j]`` with
``j`` contiguous.

:func:`schedule_matmuls` applies it (and dlight's CPU GEMV and reduction rules) to a
legalised, fused module.
"""

from __future__ import annotations

from collections.abc import Sequence

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import dlight
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import get_extent, try_inline_contiguous_spatial
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule
from tvm.target import Target

ROWS = 4
K_BLOCK = 64


def _vector_lanes(target: Target) -> int:
    """float32 lanes of the target's widest vector register (4 when unknown)."""
    try:
        width = int(tvm.target.codegen.llvm_get_vector_width(target))
    except Exception:  # an LLVM without the query
        width = 128
    return max(4, width // 32)


def _divisor(n: int, limit: int, multiple: int = 1) -> int:
    """The largest divisor of ``n`` up to ``limit``, preferring multiples of ``multiple``
    (tiles divide their loops exactly: no predicated tails)."""
    divisors = [d for d in range(1, min(n, limit) + 1) if n % d == 0]
    preferred = [d for d in divisors if d % multiple == 0]
    return (preferred or divisors)[-1]


class Matmul(CPUScheduleRule):
    """Tiles, vectorises and (with ``parallel``) parallelises a matmul-like reduction block
    (module docstring)."""

    # pylint: disable=too-many-locals

    def __init__(self, parallel: bool = True) -> None:
        super().__init__()
        self.parallel = parallel

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if infos is None:
            return None
        infos = try_inline_contiguous_spatial(sch, infos)
        if infos is None:
            return None
        reductions = [info for info in infos if info.is_reduction()]
        if len(reductions) != 1:
            return None
        main = reductions[0]
        kinds = "".join(it.kind for it in main.iters)
        if kinds.count("R") != 1 or not kinds.endswith("R") or kinds.count("S") < 2:
            return None
        loops = sch.get_loops(main.block_rv)
        if not all(isinstance(get_extent(sch, loop), int) for loop in loops[-2:]):
            return None
        epilogues = infos[infos.index(main) + 1 :]
        if any(not info.is_injective() for info in infos[: infos.index(main)]):
            return None
        lanes = 2 * _vector_lanes(target)
        block = main.block_rv
        *spatial, j, k = sch.get_loops(block)
        i = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
        i_extent, j_extent, k_extent = (get_extent(sch, loop) for loop in (i, j, k))
        rows = _divisor(i_extent, ROWS) if isinstance(i_extent, int) else 1
        cols = _divisor(j_extent, lanes, multiple=4)
        kb = _divisor(k_extent, K_BLOCK)
        io, ii = sch.split(i, [None, rows])
        jo, ji = sch.split(j, [None, cols])
        ko, ki = sch.split(k, [None, kb])
        sch.reorder(io, jo, ko, ki, ii, ji)
        outer = sch.fuse(io, jo)
        if self.parallel:
            sch.parallel(outer)
        for info in epilogues:
            sch.reverse_compute_at(info.block_rv, outer)
        if cols > 1:
            sch.vectorize(ji)
        if rows > 1:
            sch.unroll(ii)
        sch.decompose_reduction(block, ko)
        return sch


def schedule_matmuls(
    mod: tvm.IRModule, rules: Sequence[CPUScheduleRule] | None = None
) -> tvm.IRModule:
    """Schedule every unscheduled PrimFunc of the legalised, fused ``mod`` for the current
    target with the first of ``rules`` (default: :class:`Matmul`, dlight's CPU GEMV and
    reduction rules) that applies; a rule that fails on a function (an access pattern it
    cannot schedule) leaves it to the next, and a function no rule takes keeps its default
    loops."""
    if rules is None:
        rules = (Matmul(), dlight.cpu.GEMV(), dlight.cpu.Reduction())
    target = Target.current(allow_none=False)
    updated = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or "tirx.is_scheduled" in func.attrs:
            continue
        for rule in rules:
            try:
                sch = rule.apply(func, target, False)
            except (tvm.error.InternalError, s_tir.ScheduleError, ValueError):
                # ValueError: a failed check of a primitive, e.g. reverse_compute_at of a
                # batched GRU's epilogue ("TensorRegion pattern match failed")
                sch = None
            if sch is not None:
                updated[gvar] = sch.mod["main"].with_attr("tirx.is_scheduled", True)
                break
    for gvar, func in updated.items():
        mod[gvar] = func
    return mod
