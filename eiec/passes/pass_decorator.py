"""``eiec_module_pass``: ``tvm.transform.module_pass`` that keeps eiec's exceptions intact.

TVM runs a Python pass through its FFI, which turns any exception raised inside it into a
``RuntimeError`` carrying the text. eiec's passes raise ``EiecError`` subclasses that the CLI
and the callers catch by type, so the decorated pass stashes the exception and its ``__call__``
(or :func:`run_pass`, for a ``Sequential`` of such passes) re-raises the original object.

Under :func:`run_pass` a failing pass does not raise through TVM at all: it returns the module
unchanged, the passes after it in the same run return at once, and :func:`run_pass` raises the
exception when TVM is done. TVM's ``PassTimingInstrument`` needs this: when a pass raises under
it, it keeps a dangling entry for the rest of the thread, and the next timed pass corrupts
memory (apache-tvm 0.27).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import tvm

_pending = threading.local()


def eiec_module_pass(name: str) -> Callable[[type], type]:
    """Decorate a class with ``transform_module(mod, ctx)`` into a module pass named ``name``."""

    def decorate(cls: type) -> type:
        transform = cls.transform_module

        def transform_module(self: Any, mod: tvm.IRModule, ctx: Any) -> tvm.IRModule:
            running = getattr(_pending, "running", False)
            if running and getattr(_pending, "error", None) is not None:
                return mod  # an earlier pass of this run failed: run_pass raises its error
            try:
                return transform(self, mod, ctx)
            except BaseException as error:  # re-raised as it is by run_pass / __call__
                _pending.error = error
                if running:
                    return mod
                raise

        cls.transform_module = transform_module
        wrapped = tvm.transform.module_pass(opt_level=0, name=name)(cls)
        call = wrapped.__call__

        def __call__(self: Any, mod: tvm.IRModule) -> tvm.IRModule:
            return run_pass(lambda m: call(self, m), mod)

        wrapped.__call__ = __call__
        return wrapped

    return decorate


def run_pass(
    transform: tvm.transform.Pass | Callable[[tvm.IRModule], tvm.IRModule], mod: tvm.IRModule
) -> tvm.IRModule:
    """``transform(mod)`` for any pass (a ``Sequential`` too), raising the original exception
    that one of eiec's passes raised inside it (module docstring)."""
    outer = getattr(_pending, "running", False), getattr(_pending, "error", None)
    _pending.running, _pending.error = True, None
    try:
        result = transform(mod)
        error = _pending.error
    except Exception:
        error = _pending.error
        if error is None:
            raise
    finally:
        _pending.running, _pending.error = outer
    if error is not None:
        raise error from None
    return result
