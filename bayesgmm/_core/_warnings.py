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

# ConvergenceWarning is looked up through the module __getattr__ below.
__all__ = ["DataWarning", "stack_level", "warn"]

# The folder of the package: frames whose file lies below it are the library's.
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + "/"


class DataWarning(UserWarning):
    """Legal data that will make a fit behave badly (constant column, few distinct rows)."""


class _UntilScikitLearn(UserWarning):
    """The base :class:`ConvergenceWarning` has until scikit-learn is loaded."""


class _ConvergenceWarning(_UntilScikitLearn):
    """EM (or Stephens' relabelling) stopped at ``max_iter`` before it settled.

    A subclass of scikit-learn's ``ConvergenceWarning`` once scikit-learn is
    loaded, so filters written for scikit-learn silence it too.
    """


_ConvergenceWarning.__module__ = "bayesgmm"
_ConvergenceWarning.__name__ = _ConvergenceWarning.__qualname__ = "ConvergenceWarning"


def _convergence_warning() -> type[Warning]:
    """:class:`ConvergenceWarning`, made a subclass of scikit-learn's if scikit-learn is loaded.

    Importing ``sklearn.exceptions`` only for a base class cost a fit that did
    not converge 1.4 s and 97 MiB (scikit-learn brings SciPy and pandas). So
    the class starts on a stand-in base and takes scikit-learn's warning as
    its base in place (``__bases__``: the same class object, wherever it was
    imported) the first time it is looked up or issued after scikit-learn was
    loaded by anyone. A filter or ``pytest.warns`` written for scikit-learn's
    class needs scikit-learn imported, so it matches.
    """
    module = sys.modules.get("sklearn.exceptions")
    base = getattr(module, "ConvergenceWarning", None)
    if base is not None and _ConvergenceWarning.__bases__ != (base,):
        _ConvergenceWarning.__bases__ = (base,)
    return _ConvergenceWarning


def __getattr__(name):
    # Looked up through here each time, not stored, so that each lookup can
    # adopt scikit-learn's base (see _convergence_warning).
    if name == "ConvergenceWarning":
        return _convergence_warning()
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
    if category is _ConvergenceWarning:
        _convergence_warning()  # scikit-learn's filters match it once scikit-learn is loaded
    warnings.warn(message, category, stacklevel=stack_level())
