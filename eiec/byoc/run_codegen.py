"""``RunCodegen``: TVM's ``RunCodegen`` followed by dropping ``const_name_to_constant``."""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.ir import IRModule

from eiec.byoc import codegen
from eiec.byoc.attrs import CONST_NAMES
from eiec.passes.pass_decorator import eiec_module_pass


@eiec_module_pass("EieRunCodegen")
class RunCodegen:
    """Compile the offloaded functions (``relax.ext.eie`` registers their runners), then remove
    the ``const_name_to_constant`` attribute: the EIE programs hold the weights, an exported
    library would otherwise carry them all again. A compile error of an offloaded function is
    raised as the original ``EiecError`` (TVM's FFI would make it a ``RuntimeError``)."""

    def transform_module(self, mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
        """The module calling the registered runners, without the weights' attribute."""
        codegen.register_codegen()
        codegen.take_error()
        try:
            mod = relax.transform.RunCodegen()(mod)
        except Exception:
            error = codegen.take_error()
            if error is not None:
                raise error from None
            raise
        if mod.attrs is not None and CONST_NAMES in mod.attrs:
            mod = mod.without_attr(CONST_NAMES)
        return mod
