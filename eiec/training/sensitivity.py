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

With a ``machine``, only densities that fit it are candidates (the compile pre-check's rule,
:func:`eiec.frontend.checks.capacity_error`, layer by layer with the earlier layers at their
chosen density and the later ones at the sparsest): a layer whose densities within
``max_drop`` do not fit takes the densest that fits, noted in the table. When the sparsest
densities do not fit, :func:`check_fits` raises the CapacityError before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eiec.errors import CapacityError
from eiec.frontend.checks import FcShape, capacity_error
from eiec.isa.program import Machine
from eiec.training.backbone import LayerWeights
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
    #: Per layer, the densities tried that do not fit the machine (not trained).
    unfit: dict[str, list[float]] = field(default_factory=dict)
    #: Per layer, why the machine limited its choice.
    notes: dict[str, str] = field(default_factory=dict)

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
                    "unfit_densities": self.unfit.get(name, []),
                    "note": self.notes.get(name),
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
        if self.notes:
            table.add_column("note")
        for name, rows in self.rows.items():
            tried = {d: r for d, r in rows}
            cells = []
            for density in DENSITIES:
                result = tried.get(density)
                if result is None:
                    cells.append("no fit" if density in self.unfit.get(name, ()) else "")
                    continue
                text = f"{self.drop(result):.2f}"
                cells.append(f"[bold]{text}[/bold]" if density == self.chosen[name] else text)
            note = [self.notes.get(name, "")] if self.notes else []
            table.add_row(name, *cells, f"{self.chosen[name]:.0%}", *note)
        return table


def _shapes(layers: list[LayerWeights], densities: dict[str, float]) -> list[FcShape] | None:
    """The FC layers at ``densities`` as the capacity rule sees them; None with an LSTM layer
    (checked by the compiler after lowering, as the pre-check leaves it)."""
    if any(layer.kind != "fc" for layer in layers):
        return None
    return [
        FcShape(
            layer.name,
            *layer.prunable().shape,
            bias=layer.bias is not None,
            sparsity=1.0 - densities[layer.name],
            nonzero=lambda layer=layer: int(np.count_nonzero(layer.prunable())),
        )
        for layer in layers
    ]


def _error(
    machine: Machine | None, layers: list[LayerWeights], densities: dict[str, float]
) -> CapacityError | None:
    shapes = None if machine is None else _shapes(layers, densities)
    return None if shapes is None else capacity_error(machine, shapes)


def check_fits(layers: list[LayerWeights], machine: Machine | None) -> None:
    """Raise the CapacityError of ``layers`` at the sparsest density :func:`analyse` tries."""
    error = _error(machine, layers, {layer.name: min(DENSITIES) for layer in layers})
    if error is not None:
        raise CapacityError(
            f"--sparsity auto: {error.what}, the sparsest it tries",
            where=error.where,
            fix=error.fix,
        )


def analyse(
    trainer: Trainer, max_drop: float, epochs: int = 1, machine: Machine | None = None
) -> SensitivityTable:
    """The sensitivity table of every layer of ``trainer``'s model (module docstring)."""
    check_fits(trainer.layers, machine)
    pes = 0 if machine is None else machine.pes  # noted only with a machine
    machine_name = f"{pes} PE" + ("s" if pes > 1 else "")
    dense = trainer.evaluate_layers(trainer.layers, "dense")
    probe = SensitivityTable(dense, {}, {}, max_drop, epochs)
    rows: dict[str, list[tuple[float, StageResult]]] = {}
    chosen = {layer.name: min(DENSITIES) for layer in trainer.layers}
    unfit: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    for layer in trainer.layers:
        rows[layer.name] = []
        fits = [
            _error(machine, trainer.layers, {**chosen, layer.name: d}) is None
            for d in (1.0, *DENSITIES)
        ]
        unfit[layer.name] = [d for d, ok in zip(DENSITIES, fits[1:], strict=True) if not ok]
        best = 1.0 if fits[0] else None
        for density in DENSITIES:
            if density in unfit[layer.name]:
                continue
            layers = trainer.retrain({layer.name: 1.0 - density}, epochs, record=False)
            result = trainer.evaluate_layers(layers, f"sensitivity {layer.name}")
            rows[layer.name].append((density, result))
            if probe.drop(result) > max_drop:
                if best is None:
                    best = density
                    notes[layer.name] = f"over the limit: the densest that fits {machine_name}"
                break
            best = density
        chosen[layer.name] = best
        if not fits[0] and layer.name not in notes:
            densest = next(d for d in DENSITIES if d not in unfit[layer.name])
            notes[layer.name] = f"{machine_name} fits <= {densest:.0%}"
    unfit = {name: ds for name, ds in unfit.items() if ds}
    return SensitivityTable(dense, rows, chosen, max_drop, epochs, unfit, notes)
