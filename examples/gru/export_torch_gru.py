"""Export small PyTorch GRU models to ONNX (the files next to this script).

PyTorch is not a dependency of eiec; run this in a throwaway environment:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx numpy onnxscript
    /tmp/torchvenv/bin/python examples/gru/export_torch_gru.py

PyTorch's GRU is ONNX's with ``linear_before_reset = 1`` (the exporters reorder its gates to
ONNX's z, r, h). Files (weights from a fixed seed; float32; sequence first, batch 1):
- ``gru.onnx``: ``nn.GRU(8, 16)``; outputs y [5, 1, 16], h [1, 1, 16] (torch.export-based
  exporter: the zero initial state is an initialiser).
- ``gru_linear.onnx``: ``nn.GRU(8, 24, num_layers=2)`` then ``nn.Linear(24, 4)`` on the last
  step; output logits [1, 4].
- ``gru_bidir_legacy.onnx``: ``nn.GRU(6, 20, bidirectional=True)``; outputs y [4, 1, 40] and
  h [2, 1, 20]. Exported with the TorchScript-based exporter (``dynamo=False``), which builds the
  zero initial state at run time with Shape/Gather/Unsqueeze/Concat/Expand.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class Gru(nn.Module):
    """A bare GRU returning (y, h)."""

    def __init__(self, inputs: int, hidden: int, **kwargs: object) -> None:
        super().__init__()
        self.gru = nn.GRU(inputs, hidden, **kwargs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(x)
        return y, h


class GruLinear(nn.Module):
    """A two-layer GRU with a linear classifier on the last step."""

    def __init__(self, inputs: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.gru = nn.GRU(inputs, hidden, num_layers=2)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(x)
        return self.head(y[-1])


def export(module: nn.Module, x: torch.Tensor, name: str, outputs: list[str], dynamo: bool) -> None:
    """Write ``name`` next to this script."""
    module.eval()
    path = HERE / name
    kwargs = {"external_data": False} if dynamo else {}
    torch.onnx.export(
        module,
        (x,),
        str(path),
        input_names=["x"],
        output_names=outputs,
        dynamo=dynamo,
        **kwargs,
    )
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main() -> None:
    torch.manual_seed(0)
    export(Gru(8, 16), torch.randn(5, 1, 8), "gru.onnx", ["y", "h"], dynamo=True)
    export(GruLinear(8, 24, 4), torch.randn(6, 1, 8), "gru_linear.onnx", ["logits"], dynamo=True)
    export(
        Gru(6, 20, bidirectional=True),
        torch.randn(4, 1, 6),
        "gru_bidir_legacy.onnx",
        ["y", "h"],
        dynamo=False,
    )


if __name__ == "__main__":
    main()
