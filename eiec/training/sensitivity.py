"""``--sparsity auto``: each layer's density from its sensitivity to pruning (Deep Compression's
sensitivity analysis).

One layer at a time, the dense model has that layer pruned to ever lower densities
(:data:`DENSITIES`, from 50% down), each time from the dense weights with a short retraining
(``epochs``, one by default, gradual pruning as in the full run), and is measured on the
held-out split. The layer's density is the lowest whose drop from the dense model stays within
``max_drop`` percentage points (accuracy with labels, relative output error without); the
scan stops at the first density beyond it. A layer that cannot lose even half its weights
keeps them all (density 1). The full retraining afterwards recovers more than the short one,
so the choice errs on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass

from eiec.training.compress import StageResult, Trainer

DENSITIES = (0.5, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.04, 0.03, 0.02)


@dataclass(frozen=True)
class SensitivityTable:
    """Per layer, the held-out figures at each density tried, and the density chosen."""

    dense: StageResult
    rows: dict[str, list[tuple[float, StageResult]]]
    chosen: dict[str, float]
    max_drop: float
    epochs: int

    def drop(self, result: StageResult) -> float:
        """Percentage points lost against the dense model."""
        if result.accuracy is not None and self.dense.accuracy is not None:
            return 100.0 * (self.dense.accuracy - result.accuracy)
        return 100.0 * (result.output_error - self.dense.output_error)

    def sparsity(self) -> dict[str, float]:
        """The chosen sparsity of each layer."""
        return {name: 1.0 - density for name, density in self.chosen.items()}

    def to_json(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "max_drop": self.max_drop,
            "epochs": self.epochs,
            "dense": self.dense.accuracy
            if self.dense.accuracy is not None
            else self.dense.output_error,
            "layers": {
                name: {
                    "chosen_density": self.chosen[name],
                    "tried": [
                        {
                            "density": d,
                            "drop_points": self.drop(r),
                            "accuracy": r.accuracy,
                            "output_error": r.output_error,
                        }
                        for d, r in rows
                    ],
                }
                for name, rows in self.rows.items()
            },
        }

    def table(self) -> object:
        """A ``rich.table.Table``: drop in points per layer and density, the choice marked."""
        from rich.table import Table  # lazy: rich

        measure = "accuracy" if self.dense.accuracy is not None else "output error"
        table = Table(
            title=f"Sensitivity: {measure} drop (points) with one layer pruned "
            f"({self.epochs} epoch retrain; limit {self.max_drop:g})"
        )
        table.add_column("layer")
        for density in DENSITIES:
            table.add_column(f"{density:.0%}", justify="right")
        table.add_column("chosen", justify="right")
        for name, rows in self.rows.items():
            tried = {d: r for d, r in rows}
            cells = []
            for density in DENSITIES:
                result = tried.get(density)
                if result is None:
                    cells.append("")
                    continue
                text = f"{self.drop(result):.2f}"
                cells.append(f"[bold]{text}[/bold]" if density == self.chosen[name] else text)
            table.add_row(name, *cells, f"{self.chosen[name]:.0%}")
        return table


def analyse(trainer: Trainer, max_drop: float, epochs: int = 1) -> SensitivityTable:
    """The sensitivity table of every layer of ``trainer``'s model (module docstring)."""
    dense = trainer.evaluate_layers(trainer.layers, "dense")
    probe = SensitivityTable(dense, {}, {}, max_drop, epochs)
    rows: dict[str, list[tuple[float, StageResult]]] = {}
    chosen: dict[str, float] = {}
    for layer in trainer.layers:
        rows[layer.name] = []
        chosen[layer.name] = 1.0
        for density in DENSITIES:
            layers = trainer.retrain({layer.name: 1.0 - density}, epochs, record=False)
            result = trainer.evaluate_layers(layers, f"sensitivity {layer.name}")
            rows[layer.name].append((density, result))
            if probe.drop(result) > max_drop:
                break
            chosen[layer.name] = density
    return SensitivityTable(dense, rows, chosen, max_drop, epochs)
