"""``RunCodegen``: TVM's ``RunCodegen`` followed by :class:`DropConstantNames`."""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.ir import IRModule

#: The module attribute ``RunCodegen`` leaves with every offloaded weight.
CONST_NAMES = "const_name_to_constant"


@tvm.transform.module_pass(opt_level=0, name="DropConstantNames")
class DropConstantNames:
    """Remove the ``const_name_to_constant`` attribute: the EIE programs hold the weights, an
    exported library would otherwise carry them all again."""

    def transform_module(self, mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
        """The module without the attribute."""
        if mod.attrs is None or CONST_NAMES not in mod.attrs:
            return mod
        return mod.without_attr(CONST_NAMES)


def RunCodegen() -> tvm.transform.Pass:
    """Compile the offloaded functions (``relax.ext.eie``) and drop their weights' attribute."""
    return tvm.transform.Sequential(
        [relax.transform.RunCodegen(), DropConstantNames()], name="EieRunCodegen"
    )
