"""``eiec_module_pass``: ``tvm.transform.module_pass`` that keeps eiec's exceptions intact.

TVM runs a Python pass through its FFI, which turns any exception raised inside it into a
``RuntimeError`` carrying the text. eiec's passes raise ``EiecError`` subclasses that the CLI
and the callers catch by type, so the decorated pass stashes the exception and its ``__call__``
(or :func:`run_pass`, for a ``Sequential`` of such passes) re-raises the original object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import tvm

from eiec.errors import EiecError

_pending = threading.local()


def eiec_module_pass(name: str) -> Callable[[type], type]:
    """Decorate a class with ``transform_module(mod, ctx)`` into a module pass named ``name``."""

    def decorate(cls: type) -> type:
        transform = cls.transform_module

        def transform_module(self: Any, mod: tvm.IRModule, ctx: Any) -> tvm.IRModule:
            try:
                return transform(self, mod, ctx)
            except EiecError as error:
                _pending.error = error
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
    """``transform(mod)`` for any pass (a ``Sequential`` too), re-raising the original
    ``EiecError`` that one of eiec's passes raised inside it."""
    _pending.error = None
    try:
        return transform(mod)
    except Exception:
        error, _pending.error = getattr(_pending, "error", None), None
        if error is not None:
            raise error from None
        raise
