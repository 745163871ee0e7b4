"""Code generation: the compressed Relax module -> an EIE program.

``generate`` (:class:`LowerToEIE` and the lowering table), ``context`` (the values lowerings
work on), ``fc`` and ``lstm`` (the lowerings), ``assembly`` (the program under construction and
its capacity check), ``tables`` (the LSTM cell's sigmoid and tanh tables).
"""
