"""The layers EIE runs, as they appear in a Relax module: FC layers (``matmul`` by a constant,
+ bias, + ReLU) and imported LSTM and GRU calls, with the helpers that read Relax expressions.

The one place that knows these forms: the front end (which produces them), the passes and the
code generator (which rewrite and lower them) and BYOC (which offloads them) all import it.
"""
