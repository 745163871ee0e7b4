"""Build the real exporters' models of the reliability corpus (tests/reliability/corpus_models.py).

Run once, with the torch environment, from the repository root::

    /work/torchenv/bin/python tests/reliability/models/build_models.py

It writes small .onnx files beside itself: PyTorch's two exporters (a static batch of 4, Dropout
in training mode, ``keep_initializers_as_inputs=True``, opsets 7 to 9), onnxruntime's quantizers
(QDQ, per-channel QDQ, dynamic) and skl2onnx classifiers at opset 9. The models are tiny MLPs
(8 -> 16 -> 4) with fixed seeds; eiec's tests only read the files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
warnings.filterwarnings("ignore")


class Mlp(nn.Module):
    def __init__(self, dropout: bool = False) -> None:
        super().__init__()
        self.fc0 = nn.Linear(8, 16)
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()
        self.fc1 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.drop(torch.relu(self.fc0(x))))


def _mlp(dropout: bool = False) -> Mlp:
    torch.manual_seed(0)
    return Mlp(dropout).eval()


def _legacy(model: nn.Module, name: str, batch: int = 4, **options: object) -> Path:
    path = HERE / name
    x = torch.randn(batch, 8)
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False,
                      **options)  # fmt: skip
    _strip(path)
    return path


def _strip(path: Path) -> None:
    """Drop the doc strings and producer noise (smaller files, stable bytes)."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.doc_string = ""
    onnx.save(model, str(path))


def torch_models() -> None:
    _legacy(_mlp(), "torch_batch4.onnx", opset_version=17)
    _legacy(_mlp(dropout=True).train(), "torch_dropout_training.onnx", opset_version=17,
            training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)  # fmt: skip
    _legacy(_mlp(), "torch_kiai.onnx", opset_version=17, keep_initializers_as_inputs=True,
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})  # fmt: skip
    for opset in (7, 8, 9):
        _legacy(_mlp(), f"torch_opset{opset}.onnx", batch=1, opset_version=opset)
    path = HERE / "torch_dynamo_batch4.onnx"
    program = torch.onnx.export(_mlp(), (torch.randn(4, 8),), dynamo=True, optimize=True)
    program.save(str(path))
    _strip(path)


def ort_models() -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    base = _legacy(_mlp(), "ort_float.onnx", opset_version=17)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.data = iter([{"x": rng.standard_normal((4, 8)).astype(np.float32)}
                              for _ in range(8)])  # fmt: skip

        def get_next(self) -> dict | None:
            return next(self.data, None)

    quantize_static(str(base), str(HERE / "ort_qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    weight_type=QuantType.QInt8)  # fmt: skip
    quantize_static(str(base), str(HERE / "ort_qdq_per_channel.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8)  # fmt: skip
    quantize_dynamic(str(base), str(HERE / "ort_dynamic.onnx"), weight_type=QuantType.QInt8)
    for name in ("ort_qdq.onnx", "ort_qdq_per_channel.onnx", "ort_dynamic.onnx"):
        _strip(HERE / name)
    base.unlink()


def sklearn_models() -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.5)
    mlp = MLPClassifier((16,), max_iter=300, random_state=0).fit(x, y)
    logreg = LogisticRegression(max_iter=300).fit(x, y)
    for estimator, name in ((mlp, "skl_mlp_opset9.onnx"), (logreg, "skl_logreg_opset9.onnx")):
        model = to_onnx(estimator, x[:1], target_opset={"": 9, "ai.onnx.ml": 1},
                        options={"zipmap": False})  # fmt: skip
        onnx.save(model, str(HERE / name))
    np.save(HERE / "skl_x.npy", x[:8])


if __name__ == "__main__":
    torch_models()
    ort_models()
    sklearn_models()
    for path in sorted(HERE.glob("*.onnx")):
        print(f"{path.name}: {path.stat().st_size} bytes")
