"""The library's warning classes and the one helper that issues warnings.

:func:`warn` points every warning at the user's line: it walks up the call
stack to the first frame outside the ``bayesgmm`` package, so no call site
counts its own ``stacklevel`` (the count changes whenever a function is
wrapped or moved).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

# ConvergenceWarning is made on first access (module __getattr__ below).
__all__ = ["DataWarning", "stack_level", "warn"]

# The folder of the package: frames whose file lies below it are the library's.
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + "/"


class DataWarning(UserWarning):
    """Legal data that will make a fit behave badly (constant column, few distinct rows)."""


def _convergence_warning() -> type[Warning]:
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    class ConvergenceWarning(SklearnConvergenceWarning):
        """EM (or Stephens' relabelling) stopped at ``max_iter`` before it settled.

        A subclass of scikit-learn's ``ConvergenceWarning``, so filters written
        for scikit-learn silence it too.
        """

    ConvergenceWarning.__module__ = "bayesgmm"
    ConvergenceWarning.__qualname__ = "ConvergenceWarning"
    return ConvergenceWarning


def __getattr__(name):
    # ConvergenceWarning subclasses scikit-learn's, whose import costs seconds:
    # the class is made on first use (a fit that does not converge, a filter).
    if name == "ConvergenceWarning":
        cls = _convergence_warning()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _in_package(filename: str) -> bool:
    try:
        return str(Path(filename).resolve()).startswith(_PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def stack_level() -> int:
    """The ``stacklevel`` that makes ``warnings.warn`` point at the first frame outside bayesgmm.

    Counted from the caller of this function: 1 is the caller itself, 2 its
    caller, and so on.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and _in_package(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the user's line of code."""
    warnings.warn(message, category, stacklevel=stack_level())
