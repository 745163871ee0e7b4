"""Recurrent layers' gate sums are checked against the machine's accumulator at compile time,
as fully-connected layers' are (a narrow ``acc_bits`` is a compile error naming the layer, not
a verify failure blamed on the inputs)."""

from __future__ import annotations

import pytest
from gru_models import gru_model, gru_spec
from lstm_models import LstmSpec, lstm_model, random_input
from test_lower import compile_lstm

from eiec.errors import CompileError
from eiec.runtime.verify import verify


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (lstm_model([LstmSpec(8)]), "lstm0"),
        (gru_model([gru_spec(8)]), "gru0"),
        (gru_model([gru_spec(8, linear_before_reset=1)]), "gru0"),
    ],
    ids=["lstm", "gru", "gru-lbr"],
)
def test_a_narrow_accumulator_is_a_compile_error_naming_the_layer(model, name: str) -> None:
    with pytest.raises(CompileError) as caught:
        compile_lstm(model, acc_bits=17)
    message = str(caught.value)
    assert message.startswith(f"layer {name}: its sums have ")
    assert "bits (--acc-bits) (raise --acc-bits to " in message
    need = int(message.split("raise --acc-bits to ")[1].split()[0])
    assert 17 < need <= 48
    result = compile_lstm(model, acc_bits=need)  # the bits it asks for are enough
    report = verify(model, result.program, random_input(model))
    assert report.passed, report.problems
