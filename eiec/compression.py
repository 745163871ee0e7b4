"""The compression report, per layer and in total, as in Deep Compression's tables.

Sizes are what the program stores, over all PEs: entries (one byte each: a 4-bit codebook index
and a 4-bit relative row index, padding entries included), column pointers (``cols + 1`` per PE
per layer, ``ptr_bits`` each) and the codebook (16-bit words), against the dense float32 weights
and biases. The Huffman figures (Deep Compression's third stage) replace the 4-bit fields by
canonical Huffman codes built from the layer's histograms of weight indices and of relative
indices (pointers and codebook unchanged).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from eiec.codegen.assembly import LayerRecord
from eiec.isa.program import NIBBLE_BITS, Layer
from eiec.passes.prune_weights import PruneStats
from eiec.passes.share_weights import ShareStats


def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length of each symbol of a Huffman code for ``counts`` (0 for absent symbols)."""
    lengths = np.zeros(len(counts), dtype=np.int64)
    heap = [(int(c), i, [i]) for i, c in enumerate(counts) if c > 0]
    if len(heap) == 1:
        lengths[heap[0][2]] = 1
        return lengths
    heapq.heapify(heap)
    order = len(counts)
    while len(heap) > 1:
        count_a, _, symbols_a = heapq.heappop(heap)
        count_b, _, symbols_b = heapq.heappop(heap)
        merged = symbols_a + symbols_b
        lengths[merged] += 1
        heapq.heappush(heap, (count_a + count_b, order, merged))
        order += 1
    return lengths


def huffman_bits(symbols: np.ndarray, alphabet: int = 1 << NIBBLE_BITS) -> int:
    """Bits of ``symbols`` Huffman-coded with a code built from their own histogram."""
    counts = np.bincount(symbols.astype(np.int64), minlength=alphabet)
    return int((counts * huffman_lengths(counts)).sum())


@dataclass(frozen=True)
class LayerReport:
    """One layer's (or the total's) compression figures."""

    name: str
    shape: list[int] | None
    weights: int
    nonzero_weights: int
    weight_density: float
    has_bias: bool
    stored_entries: int
    padding_entries: int
    bits_per_weight_index: int
    bits_per_relative_index: int
    entry_bytes: int
    pointer_bytes: int
    codebook_bytes: int
    stored_bytes: int
    dense_bytes: int
    compression_ratio: float
    huffman_bits_per_weight_index: float
    huffman_bits_per_relative_index: float
    huffman_bytes: int
    huffman_compression_ratio: float
    quantization_rmse: float
    quantization_relative_rmse: float

    def to_json(self) -> dict[str, object]:
        """The figures as JSON-ready data."""
        return asdict(self)


def _report(
    name: str,
    shape: list[int] | None,
    *,
    weights: int,
    nonzero: int,
    has_bias: bool,
    entries: int,
    padding: int,
    pointer_bytes: int,
    codebook_bytes: int,
    dense: int,
    v_bits: float,
    z_bits: float,
    huffman: int,
    rmse: float,
    relative_rmse: float,
) -> LayerReport:
    """The figures of a layer or of the total from its counts (ratios 0 when undefined)."""
    stored = entries + pointer_bytes + codebook_bytes
    return LayerReport(
        name=name,
        shape=shape,
        weights=weights,
        nonzero_weights=nonzero,
        weight_density=nonzero / weights if weights else 0.0,
        has_bias=has_bias,
        stored_entries=entries,
        padding_entries=padding,
        bits_per_weight_index=NIBBLE_BITS,
        bits_per_relative_index=NIBBLE_BITS,
        entry_bytes=entries,
        pointer_bytes=pointer_bytes,
        codebook_bytes=codebook_bytes,
        stored_bytes=stored,
        dense_bytes=dense,
        compression_ratio=dense / stored if stored else 0.0,
        huffman_bits_per_weight_index=v_bits / entries if entries else 0.0,
        huffman_bits_per_relative_index=z_bits / entries if entries else 0.0,
        huffman_bytes=huffman,
        huffman_compression_ratio=dense / huffman if huffman else 0.0,
        quantization_rmse=rmse,
        quantization_relative_rmse=relative_rmse,
    )


def stored_nonzeros(layer: Layer, cols: int) -> int:
    """Non-zero codes in the first ``cols`` columns of ``layer``, counted on its stored entries
    (padding entries store code 0): per PE, its entries up to column ``cols``'s pointer."""
    ptr = layer.ptr.astype(np.int64)
    base = np.zeros(ptr.shape[0], dtype=np.int64)
    np.cumsum(ptr[:-1, -1], out=base[1:])
    before = np.zeros(layer.v.size + 1, dtype=np.int64)
    np.cumsum(layer.v != 0, out=before[1:])
    return int((before[base + ptr[:, cols]] - before[base]).sum())


def layer_report(record: LayerRecord, ptr_bits: int, share: ShareStats | None) -> LayerReport:
    """The figures of one lowered layer."""
    layer = record.layer
    inputs = layer.cols - (1 if record.has_bias else 0)
    rows, cols = record.model_rows, record.model_cols
    pointer_bytes = layer.pes * (layer.cols + 1) * ptr_bits // 8
    codebook_bytes = 2 * int(layer.codebook.values.size)
    v_bits, z_bits = huffman_bits(layer.v), huffman_bits(layer.z)
    return _report(
        layer.name,
        [rows, cols],
        weights=rows * cols,
        nonzero=stored_nonzeros(layer, inputs),
        has_bias=record.has_bias,
        entries=layer.stored_entries,
        padding=layer.padding_entries,
        pointer_bytes=pointer_bytes,
        codebook_bytes=codebook_bytes,
        dense=4 * (rows * cols + (rows if record.has_bias else 0)),
        v_bits=v_bits,
        z_bits=z_bits,
        huffman=math.ceil(v_bits / 8) + math.ceil(z_bits / 8) + pointer_bytes + codebook_bytes,
        rmse=share.rmse if share else 0.0,
        relative_rmse=share.relative_rmse if share else 0.0,
    )


def _total(layers: list[LayerReport]) -> LayerReport:
    def total(key: str) -> int:
        return int(sum(getattr(layer, key) for layer in layers))

    nonzero = total("nonzero_weights")
    sq = sum(r.quantization_rmse**2 * r.nonzero_weights for r in layers)
    return _report(
        "total",
        None,
        weights=total("weights"),
        nonzero=nonzero,
        has_bias=any(r.has_bias for r in layers),
        entries=total("stored_entries"),
        padding=total("padding_entries"),
        pointer_bytes=total("pointer_bytes"),
        codebook_bytes=total("codebook_bytes"),
        dense=total("dense_bytes"),
        v_bits=sum(r.huffman_bits_per_weight_index * r.stored_entries for r in layers),
        z_bits=sum(r.huffman_bits_per_relative_index * r.stored_entries for r in layers),
        huffman=total("huffman_bytes"),
        rmse=math.sqrt(sq / nonzero) if nonzero else 0.0,
        relative_rmse=max((r.quantization_relative_rmse for r in layers), default=float("nan")),
    )


@dataclass(frozen=True)
class CompressionReport:
    """Per-layer and total compression figures of a compiled program.

    The total's ``quantization_relative_rmse`` is the worst layer's. ``pruning``: what pruning
    did per (model) layer, with the busiest PE's non-zero weights over the PEs' mean before and
    after it (1.0: perfectly balanced).
    """

    layers: list[LayerReport]
    total: LayerReport
    pes: int
    bits: int
    pruning: list[PruneStats] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        records: dict[str, LayerRecord],
        ptr_bits: int,
        pes: int,
        bits: int,
        share: list[ShareStats] | None = None,
        prune: list[PruneStats] | None = None,
    ) -> CompressionReport:
        """The report of the lowered layers ``records`` (``share``: ShareWeights' stats,
        ``prune``: PruneWeights')."""
        by_layer = {s.layer: s for s in share or []}
        layers = [layer_report(r, ptr_bits, by_layer.get(name)) for name, r in records.items()]
        return cls(layers, _total(layers), pes, bits, list(prune or []))

    def to_json(self) -> dict[str, object]:
        """``layers`` (list of per-layer dicts), ``total`` (same keys), ``pes``, ``bits``."""
        return {
            "pes": self.pes,
            "bits": self.bits,
            "layers": [layer.to_json() for layer in self.layers],
            "total": self.total.to_json(),
            "pruning": [asdict(stats) for stats in self.pruning],
        }

    def _balance(self, name: str) -> str:
        """``before -> after`` busiest-PE ratio of the model layer of program layer ``name``."""
        for stats in self.pruning:
            if name == stats.layer or name.startswith(stats.layer + "."):
                if not stats.pe_mean_before or not stats.pe_mean_after:
                    return ""
                before = stats.pe_max_before / stats.pe_mean_before
                return f"{before:.2f} -> {stats.pe_max_after / stats.pe_mean_after:.2f}"
        return ""

    def table(self) -> object:
        """A ``rich.table.Table`` of the report."""
        from rich.table import Table  # lazy: rich

        table = Table(title=f"Compression ({self.pes} PEs, {self.bits}-bit weights)")
        for header in (
            "layer",
            "shape",
            "density",
            "padding",
            "stored KB",
            "dense KB",
            "ratio",
            "Huffman KB",
            "ratio",
            "k-means err",
            "PE max/mean",
        ):
            table.add_column(header, justify="left" if header == "layer" else "right")
        for row in [*self.layers, self.total]:
            table.add_row(
                row.name,
                "x".join(map(str, row.shape)) if row.shape else "",
                f"{row.weight_density:.1%}",
                str(row.padding_entries),
                f"{row.stored_bytes / 1024:.1f}",
                f"{row.dense_bytes / 1024:.1f}",
                f"{row.compression_ratio:.1f}x",
                f"{row.huffman_bytes / 1024:.1f}",
                f"{row.huffman_compression_ratio:.1f}x",
                f"{row.quantization_relative_rmse:.2%}",
                self._balance(row.name),
                end_section=row is self.layers[-1],
            )
        return table
