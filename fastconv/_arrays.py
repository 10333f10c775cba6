"""Host and device arrays side by side: which module owns an array, and a host copy of it."""
import numpy as np


def array_module(a):
    """``numpy`` or ``cupy``, whichever owns ``a``."""
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


def to_numpy(a):
    """``a`` as a NumPy array: a view where it already is one, a host copy of a CuPy array."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
