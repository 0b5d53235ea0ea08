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

import math

__all__ = [
    "DRAW_BLOCK_ELEMENTS",
    "EM_BLOCK_ELEMENTS",
    "bucket",
    "em_block_layout",
    "rows_per_block",
]

EM_BLOCK_ELEMENTS = 1 << 14
DRAW_BLOCK_ELEMENTS = 1 << 22


def rows_per_block(width: int, budget: int | None = None) -> int:
    """How many items of ``width`` elements each fit in ``budget`` (at least one).

    ``budget`` defaults to :data:`DRAW_BLOCK_ELEMENTS`, read at call time.
    """
    budget = DRAW_BLOCK_ELEMENTS if budget is None else budget
    return max(1, budget // max(1, int(width)))


#: Shape classes: sizes are rounded up to the next ``ceil(2 ** (k / 4))``, a
#: ladder with steps of at most 19%, so that data sets of similar size share
#: one compiled program (``bucket(272) == 279``, ``bucket(250) == 256``).
LADDER_STEPS_PER_DOUBLING = 4
#: The smallest number of rows a single-block shape class has.
MIN_ROWS = 32


def bucket(n: int, minimum: int = 1, steps: int = LADDER_STEPS_PER_DOUBLING) -> int:
    """The smallest size ``ceil(2 ** (k / steps))`` of the ladder that is ``>= max(n, minimum)``.

    ``steps`` per doubling sets the largest padding: ``2 ** (1 / steps) - 1``
    (19% for 4, 4.4% for 16).
    """
    n = max(int(n), int(minimum), 1)
    k = math.ceil(steps * math.log2(n))
    while k > 0 and math.ceil(2 ** ((k - 1) / steps)) >= n:
        k -= 1  # guard against log2 rounding up past an exact step
    while math.ceil(2 ** (k / steps)) < n:
        k += 1
    return math.ceil(2 ** (k / steps))


def em_block_layout(n_samples: int, n_components: int, n_features: int, block_size=None):
    """Blocks of the E-step for N rows, K components, D features: ``(n_alloc, n_used, B)``.

    ``B`` rows per block is computed from :data:`EM_BLOCK_ELEMENTS` unless
    ``block_size`` is given. The data fill ``n_used`` blocks; ``n_alloc >=
    n_used`` blocks are allocated, the rest zero-weight padding, so that the
    shape ``(n_alloc, B, D)`` depends only on the shape class of N (one
    program compiled per class; the E-step skips the padding blocks). Data that
    fit in one block get ``B`` = the next power of two (at least
    :data:`MIN_ROWS`) rows. With ``block_size`` given the
    layout is exact: no shape class, ``n_alloc == n_used``, ``B <= N``.
    """
    if block_size is not None:
        block_size = min(block_size, n_samples)
        n_blocks = -(-n_samples // block_size)
        return n_blocks, n_blocks, block_size
    width = max(1, n_components * n_features)
    block_size = EM_BLOCK_ELEMENTS // width
    if block_size < 64:
        block_size = max(256, (EM_BLOCK_ELEMENTS << 6) // width)
    if n_samples <= block_size:
        # one block: a power of two (the padding costs little at this size)
        return 1, 1, max(MIN_ROWS, 1 << (int(n_samples) - 1).bit_length())
    n_used = -(-n_samples // block_size)
    return bucket(n_used), n_used, block_size
