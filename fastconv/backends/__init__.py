"""Backend registry: a name → a backend object, imported on first use.

Every backend has the methods of :class:`fastconv.backends._native.NativeBackend`
(``conv2d``, ``conv2d_backward``, ``pool2d``, ``pool2d_backward``) over NHWC arrays.
"""
import importlib

NAMES = ("cython", "numba", "cupy", "reference")
_loaded = {}


class BackendUnavailableError(ImportError):
    """The backend exists but its dependencies (Numba, CuPy, a GPU, the compiled kernels) do not."""


def _load(name):
    if name not in _loaded:
        _loaded[name] = importlib.import_module(f"fastconv.backends.{name}").BACKEND
    return _loaded[name]


def get(name):
    """The backend called ``name``; a clear error if the name is unknown or it cannot load."""
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; fastconv has {NAMES}, "
                         f"installed here: {available()}")
    try:
        return _load(name)
    except ImportError as err:
        raise BackendUnavailableError(
            f"backend {name!r} is not available: {err}. Installed backends: "
            f"{available()}") from err


def available():
    """Names of the backends that load on this machine."""
    names = []
    for name in NAMES:
        try:
            _load(name)
        except ImportError:
            continue
        names.append(name)
    return names
