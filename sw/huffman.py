"""Huffman coding and Deep Compression's storage accounting (the paper's Table-2 style).

A pruned, shared layer is stored as (a) the codebook indices of its nonzero weights and (b) the
gaps between their positions (relative indexing, ``gap_bits`` per gap; a gap that does not fit
is bridged by a filler entry with index 0). Both streams are Huffman coded; each layer also
stores its codebook (32-bit floats, as the paper counts) and its biases (32-bit).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["huffman_code_lengths", "huffman_bits", "LayerSize", "size_report", "totals",
           "format_size_table"]

GAP_BITS = 4
FLOAT_BITS = 32


def huffman_code_lengths(counts: dict[int, int]) -> dict[int, int]:
    """Code length per symbol of an optimal prefix code for ``counts`` (symbols with count 0
    get no code). One symbol gets length 1."""
    items = [(c, s) for s, c in counts.items() if c > 0]
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][1]: 1}
    heap = [(c, i, [s]) for i, (c, s) in enumerate(items)]
    heapq.heapify(heap)
    lengths = {s: 0 for _, s in items}
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def huffman_bits(symbols) -> int:
    """Bits of ``symbols`` Huffman coded with a code built from their own histogram."""
    counts = Counter(np.asarray(symbols).ravel().tolist())
    lengths = huffman_code_lengths(counts)
    return sum(counts[s] * lengths[s] for s in counts)


def relative_index_streams(indices: np.ndarray, gap_bits: int = GAP_BITS):
    """(index stream, gap stream) of Deep Compression's relative indexing of a flat layer."""
    flat = np.asarray(indices).ravel()
    positions = np.flatnonzero(flat)
    max_gap = (1 << gap_bits) - 1
    idx_stream, gap_stream = [], []
    prev = -1
    for pos in positions.tolist():
        gap = pos - prev - 1
        while gap > max_gap:  # filler: a zero weight max_gap+1 further on
            idx_stream.append(0)
            gap_stream.append(max_gap)
            gap -= max_gap + 1
        idx_stream.append(int(flat[pos]))
        gap_stream.append(gap)
        prev = pos
    return np.array(idx_stream, np.int64), np.array(gap_stream, np.int64)


@dataclass(frozen=True)
class LayerSize:
    name: str
    weights: int
    nonzero: int
    bits: int
    biases: int
    float_bytes: float  #: weights and biases at 32 bits
    dense_bytes: float  #: every weight as a ``bits`` index (what the hardware stores today)
    sparse_bytes: float  #: nonzero indices + ``GAP_BITS`` gaps, before Huffman
    huffman_bytes: float  #: both streams Huffman coded
    overhead_bytes: float  #: codebook (32-bit floats) and biases (32-bit)

    @property
    def density(self) -> float:
        return self.nonzero / max(1, self.weights)

    @property
    def compressed_bytes(self) -> float:
        return self.huffman_bytes + self.overhead_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "density": self.density, "compressed_bytes": self.compressed_bytes}


def size_report(layers: dict[str, tuple[np.ndarray, int, int]], gap_bits: int = GAP_BITS
                ) -> list[LayerSize]:
    """``layers``: name -> (indices, bits, number of biases). Sizes in bytes."""
    rows = []
    for name, (indices, bits, biases) in layers.items():
        idx_stream, gap_stream = relative_index_streams(indices, gap_bits)
        n = int(np.asarray(indices).size)
        nonzero = int(np.count_nonzero(indices))
        huff = huffman_bits(idx_stream) + huffman_bits(gap_stream)
        rows.append(LayerSize(
            name=name, weights=n, nonzero=nonzero, bits=bits, biases=biases,
            float_bytes=(n + biases) * FLOAT_BITS / 8,
            dense_bytes=n * bits / 8,
            sparse_bytes=len(idx_stream) * (bits + gap_bits) / 8,
            huffman_bytes=huff / 8,
            overhead_bytes=((1 << bits) + biases) * FLOAT_BITS / 8,
        ))
    return rows


def totals(rows: list[LayerSize]) -> dict:
    t = {k: sum(getattr(r, k) for r in rows) for k in (
        "weights", "nonzero", "biases", "float_bytes", "dense_bytes", "sparse_bytes",
        "huffman_bytes", "overhead_bytes", "compressed_bytes")}
    t["density"] = t["nonzero"] / max(1, t["weights"])
    t["ratio"] = t["float_bytes"] / max(1.0, t["compressed_bytes"])
    return t


def format_size_table(rows: list[LayerSize]) -> str:
    head = (f"{'layer':<26} {'weights':>9} {'density':>8} {'bits':>4} {'32-bit KB':>10} "
            f"{'dense KB':>9} {'sparse KB':>9} {'Huffman KB':>10} {'ratio':>6}")
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(f"{r.name:<26} {r.weights:>9,} {r.density * 100:>7.1f}% {r.bits:>4} "
                   f"{r.float_bytes / 1e3:>10.1f} {r.dense_bytes / 1e3:>9.1f} "
                   f"{r.sparse_bytes / 1e3:>9.1f} {r.compressed_bytes / 1e3:>10.1f} "
                   f"{r.float_bytes / max(1.0, r.compressed_bytes):>5.1f}x")
    t = totals(rows)
    out.append("-" * len(head))
    out.append(f"{'total':<26} {t['weights']:>9,} {t['density'] * 100:>7.1f}% {'':>4} "
               f"{t['float_bytes'] / 1e3:>10.1f} {t['dense_bytes'] / 1e3:>9.1f} "
               f"{t['sparse_bytes'] / 1e3:>9.1f} {t['compressed_bytes'] / 1e3:>10.1f} "
               f"{t['ratio']:>5.1f}x")
    out.append(f"compressed model: {t['compressed_bytes'] / 1e6:.3f} MB (Huffman-coded indices and "
               f"gaps, codebooks and biases at 32 bits) vs {t['float_bytes'] / 1e6:.3f} MB float")
    return "\n".join(out)
