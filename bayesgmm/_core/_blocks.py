"""Block sizes: how many elements a blocked computation holds at once.

Two budgets, for two kinds of work:

- :data:`EM_BLOCK_ELEMENTS` bounds the largest intermediate of one E-step
  block (rows x K x D). Up to 2^14 elements (128 KiB in float64) XLA's CPU
  runtime runs each operation on the calling thread; above that it hands them
  to its thread pool, which costs more than it gains for narrow rows (D=10,
  K=8: 20 ms against 28 ms per iteration at N=1e5, and 90 ms with 2^21-element
  blocks; ``benchmarks/em_speed.py``). Wide rows (K x D > 256) get blocks of
  :data:`WIDE_ROWS` rows: the E-step's largest intermediate is then its
  quadratic features, ``D^2 / 2`` per row (:mod:`bayesgmm._core._quadratic`),
  and 128 rows beat both 64 and large blocks on one core (N=5e4, D=20, K=16:
  21.8 ms per E-step against 25.3 at 64 rows and 34.8 at 3,276; N=2e4, D=50,
  K=16: 51.6 against 53.8 and 68.4 at 1,310).
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
    "component_class",
    "em_block_layout",
    "em_rows_per_block",
    "feature_class",
    "row_class",
    "rows_per_block",
]

EM_BLOCK_ELEMENTS = 1 << 14
#: Rows of an E-step block when ``EM_BLOCK_ELEMENTS`` holds fewer than 64 rows of K x D.
WIDE_ROWS = 128
#: Shape classes of at most this many blocks are laid out as one block (see em_block_layout).
MERGED_BLOCKS = 4
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
    fit in one block all share the one-block class: a single block of ``B``
    rows, whatever N (50 rows or 1,000 at K x D = 16: the padding rows cost
    microseconds per iteration, a new program a second). Up to
    :data:`MERGED_BLOCKS` blocks of a shape class are laid out as one block of
    their rows: on small data an iteration's time is XLA's kernel launches,
    about ten per block (N=2,000, D=2, K=3: 100 us per iteration with one
    block of 2,048 rows against 140 us with four of 512; with eight, at
    N=4,000, the merged block was no faster, at N=8,000 slower). With
    ``block_size`` given the layout is exact: no shape class, ``n_alloc ==
    n_used``, ``B <= N``.
    """
    if block_size is not None:
        block_size = min(block_size, n_samples)
        n_blocks = -(-n_samples // block_size)
        return n_blocks, n_blocks, block_size
    block_size = em_rows_per_block(n_components, n_features)
    if n_samples <= block_size:
        return 1, 1, block_size
    n_used = -(-n_samples // block_size)
    n_alloc = bucket(n_used)
    if n_alloc <= MERGED_BLOCKS:  # the same rows in one block: fewer kernel launches
        return 1, 1, n_alloc * block_size
    return n_alloc, n_used, block_size


def em_rows_per_block(n_components: int, n_features: int) -> int:
    """Rows of one E-step block for K components and D features (see the module docstring)."""
    width = max(1, n_components * n_features)
    block_size = EM_BLOCK_ELEMENTS // width
    return block_size if block_size >= 64 else WIDE_ROWS


def row_class(n_samples: int, n_components: int, n_features: int) -> int:
    """Rows that per-row work on N rows (densities, responsibilities) is padded to.

    Up to one E-step block (:func:`em_rows_per_block`) every N shares that
    size; above it, the ladder of :func:`bucket`.
    """
    block = em_rows_per_block(n_components, n_features)
    return block if n_samples <= block else bucket(n_samples)


#: Components of a small fit are padded up to their class (8, 16, 32, ...)
#: while the padded E-step holds at most this many elements (rows x K x D):
#: then one compiled program serves every K of the class (K = 1..8 on Old
#: Faithful), and the extra work, a few hundred microseconds per iteration,
#: is far below the second or so that compiling a new program costs.
COMPONENT_PAD_ELEMENTS = 1 << 18
#: The smallest component class.
MIN_COMPONENTS = 8


def component_class(n_samples: int, n_components: int, n_features: int) -> int:
    """How many components a fit of N rows, K components, D features computes with.

    ``max(8, next power of two >= K)`` when that padded problem is small
    (rows of its shape class x K x D at most :data:`COMPONENT_PAD_ELEMENTS`),
    else ``K`` itself: large fits run long enough for their own program to pay.
    """
    k = max(MIN_COMPONENTS, 1 << (int(n_components) - 1).bit_length())
    if row_class(n_samples, k, n_features) * k * max(1, int(n_features)) > COMPONENT_PAD_ELEMENTS:
        return int(n_components)
    return k


#: Features of a small fit are padded up to their class, ``ceil(2 ** (k / 2))``
#: from 4 on (4, 6, 8, 12, 16, 23, 32, ...): the padding columns are zeros that
#: EM models with mean 0 and variance 1, independent of the rest (see
#: :func:`bayesgmm.em._core.m_step`), so one compiled program serves D = 1..4,
#: another D = 5, 6, and so on.
MIN_FEATURES = 4
FEATURE_STEPS_PER_DOUBLING = 2


def feature_class(n_samples: int, n_components: int, n_features: int) -> int:
    """How many features a fit of N rows, K components, D features computes with.

    The next size of the ladder :func:`bucket` (``minimum`` 4, two steps per
    doubling) when the padded problem, with K padded to its class too, is small
    (as in :func:`component_class`), else ``D`` itself.
    """
    d = bucket(n_features, MIN_FEATURES, FEATURE_STEPS_PER_DOUBLING)
    k = max(MIN_COMPONENTS, 1 << (int(n_components) - 1).bit_length())
    if row_class(n_samples, k, d) * k * d > COMPONENT_PAD_ELEMENTS:
        return int(n_features)
    return d
