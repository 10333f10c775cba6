"""Process-wide settings: the default backend and the thread count.

The backend comes from, in order: the ``backend=`` argument of a call, the innermost
``use_backend`` block, ``set_backend``, the ``FASTCONV_BACKEND`` environment variable,
and 'cython'. CuPy arrays always run on the 'cupy' backend.
"""
import contextlib
import contextvars
import os
from pathlib import Path

from fastconv import backends

_backend = contextvars.ContextVar("fastconv_backend", default=None)
_default = [os.environ.get("FASTCONV_BACKEND", "cython")]
_threads = [None]


def set_backend(name):
    """Make ``name`` the process-wide default backend (checked: it must load)."""
    backends.get(name)
    _default[0] = name


def get_backend():
    """Name of the backend that a call without ``backend=`` uses here."""
    return _backend.get() or _default[0]


@contextlib.contextmanager
def use_backend(name):
    """``with fastconv.use_backend('numba'): ...`` runs the block on that backend."""
    backends.get(name)
    token = _backend.set(name)
    try:
        yield backends.get(name)
    finally:
        _backend.reset(token)


def set_num_threads(n):
    """Use ``n`` threads in OpenMP (Cython kernels), Numba and BLAS alike."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the thread count must be a positive int, got {n!r}")
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=n)
    from fastconv.kernels.cython import threads
    threads.set_num_threads(n)
    if "numba" in backends._loaded:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _threads[0] = n


def get_num_threads():
    """The thread count set by :func:`set_num_threads`, else OpenMP's default."""
    if _threads[0] is None:
        from fastconv.kernels.cython import threads
        return threads.get_max_threads()
    return _threads[0]


def cache_dir():
    """``$FASTCONV_CACHE``, else ``$XDG_CACHE_HOME/fastconv``, else ``~/.cache/fastconv``: where
    downloads and the autotuner's results are kept."""
    if os.environ.get("FASTCONV_CACHE"):
        return Path(os.environ["FASTCONV_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "fastconv"
    return Path.home() / ".cache" / "fastconv"
