"""One OpenBLAS thread per LAPACK call while a compiled program runs them.

jaxlib's CPU LAPACK kernels call SciPy's OpenBLAS from XLA's thread pool,
which runs independent kernels of a program side by side. OpenBLAS's threaded
routines (a 200 x 200 Cholesky factorisation already is one) hand part of the
work to OpenBLAS's own server thread; entered from XLA's threads, sometimes two
at once, they ended in a call whose part was never picked up: the caller
spinning in ``exec_blas_async_wait``, the server idling, for good (MAP-EM
on 300 x 200 data hung in each of three loops of 60 fits, with every kernel
given one matrix). A call limited to one thread never involves the server,
and any number of them can run side by side.

:func:`single_threaded_blas` limits the BLAS libraries to one thread each for
as long as it is held (nested and concurrent holders share one limit; the last
to leave restores the previous setting). XLA's thread pool still runs
independent kernels in parallel.
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["single_threaded_blas"]

_lock = threading.Lock()
_holders = 0
_controller = None
_limiter = None


@contextlib.contextmanager
def single_threaded_blas():
    """Context (and decorator) in which BLAS and LAPACK use one thread per call."""
    global _holders, _limiter
    with _lock:
        if _holders == 0:
            _limiter = _get_controller().limit(limits=1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limiter.restore_original_limits()
                _limiter = None


def _get_controller():
    global _controller
    if _controller is None:
        # The OpenBLAS that jaxlib's LAPACK kernels call is SciPy's: load it
        # before looking for the libraries to limit.
        import scipy.linalg.cython_lapack  # noqa: F401
        import threadpoolctl

        _controller = threadpoolctl.ThreadpoolController()
    return _controller
