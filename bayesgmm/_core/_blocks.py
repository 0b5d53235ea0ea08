"""Block sizes: how many elements a blocked computation holds at once.

Two budgets, for two kinds of work:

- :data:`EM_BLOCK_ELEMENTS` bounds the largest intermediate of one E-step
  block (rows x K x D). Up to 2^14 elements (128 KiB in float64) XLA's CPU
  runtime runs each operation on the calling thread; above that it hands them
  to its thread pool, which costs more than it gains for narrow rows (D=10,
  K=8: 20 ms against 28 ms per iteration at N=1e5, and 90 ms with 2^21-element
  blocks; ``benchmarks/em_speed.py``). Wide rows (K x D > 256) get blocks of
  2^20 elements instead, large enough for the threads to pay off.
- :data:`DRAW_BLOCK_ELEMENTS` bounds the (draws x rows x K) arrays that the
  posterior summaries (membership, relabelling, predictive checks,
  label-invariant diagnostics) hold in memory at once: 2^22 elements, 32 MiB
  in float64.
"""

from __future__ import annotations

__all__ = ["DRAW_BLOCK_ELEMENTS", "EM_BLOCK_ELEMENTS", "em_block_layout", "rows_per_block"]

EM_BLOCK_ELEMENTS = 1 << 14
DRAW_BLOCK_ELEMENTS = 1 << 22


def rows_per_block(width: int, budget: int | None = None) -> int:
    """How many items of ``width`` elements each fit in ``budget`` (at least one).

    ``budget`` defaults to :data:`DRAW_BLOCK_ELEMENTS`, read at call time.
    """
    budget = DRAW_BLOCK_ELEMENTS if budget is None else budget
    return max(1, budget // max(1, int(width)))


def em_block_layout(n_samples: int, n_components: int, n_features: int, block_size=None):
    """``(n_blocks, block_size)`` of the E-step for N rows, K components, D features.

    ``block_size`` (rows per block) is computed from :data:`EM_BLOCK_ELEMENTS`
    unless given; it never exceeds ``n_samples``.
    """
    if block_size is None:
        width = max(1, n_components * n_features)
        block_size = EM_BLOCK_ELEMENTS // width
        if block_size < 64:
            block_size = max(256, (EM_BLOCK_ELEMENTS << 6) // width)
    block_size = min(block_size, n_samples)
    n_blocks = -(-n_samples // block_size)
    return n_blocks, block_size
