"""The names BYOC writes into Relax modules: the codegen, function attributes, symbols."""

from __future__ import annotations

from tvm import relax

#: The ``Codegen`` attribute of an offloaded function (TVM calls ``relax.ext.eie``).
CODEGEN = "eie"
#: Function attribute holding the JSON compile options of an offloaded function.
ATTR_OPTIONS = "eie.options"
#: Function attribute holding an offloaded function's calibration inputs (rows x features).
ATTR_CALIBRATION = "eie.calibration"
#: Function attribute holding the original model's values of those inputs (``,refit``'s target)
#: when the calibration inputs are the pruned model's (sequential calibration).
ATTR_REFERENCE = "eie.calibration_reference"
#: Function attribute (1) marking an offloaded function to train on its calibration inputs.
ATTR_TRAIN = "eie.train"
#: Attribute of the local LSTM / GRU function: the name of the module-level function it copies.
ATTR_RECURRENT_NAME = "eie.recurrent_name"
#: Prefix of every offloaded function's symbol.
SYMBOL_PREFIX = "eie_"
#: The module attribute ``RunCodegen`` leaves with every offloaded weight.
CONST_NAMES = "const_name_to_constant"


def is_offloaded(func: relax.Function) -> bool:
    """True for a function the EIE codegen compiles."""
    attrs = func.attrs
    return attrs is not None and "Codegen" in attrs and str(attrs["Codegen"]) == CODEGEN
