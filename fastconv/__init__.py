"""fastconv: fast convolution and pooling kernels (Cython, Numba, CUDA) under a Keras-style API.

``import fastconv as keras`` gives Keras' namespaces (``keras.layers``, ``keras.models``,
``keras.optimizers``, ``keras.losses``, ``keras.utils``, …), loaded on first use so that
importing the package stays fast.

>>> import numpy as np, fastconv
>>> x = np.zeros((1, 6, 6, 1), np.float32)
>>> fastconv.conv2d(x, np.ones((3, 3, 1, 2), np.float32)).shape
(1, 4, 4, 2)
"""
import warnings

from fastconv._config import (get_backend, get_num_threads, set_backend, set_num_threads,
                              use_backend)
from fastconv.backends import BackendUnavailableError, available as available_backends
from fastconv.functional import (ALGORITHMS, Conv2DGrads, avg_pool2d, avg_pool2d_backward,
                                 choose_algorithm, conv2d, conv2d_backward, conv_output_shape,
                                 conv_output_size, dropout, global_avg_pool2d,
                                 global_avg_pool2d_backward, matmul, max_pool2d,
                                 max_pool2d_backward, relu_backward)

__version__ = "0.1.0"

_SUBMODULES = ("activations", "applications", "backend", "callbacks", "datasets",
               "initializers", "layers", "losses", "metrics", "models", "optimizers",
               "preprocessing", "reports", "tune", "utils")
_MODEL_NAMES = ("Sequential", "Model", "Input")


def __getattr__(name):
    import importlib
    if name in _SUBMODULES:
        return importlib.import_module(f"fastconv.{name}")
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module("fastconv.models"), name)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_MODEL_NAMES))


def _warn_if_serial():
    try:
        from fastconv.kernels.cython import threads
    except ImportError:
        return
    if not threads.openmp_enabled():
        warnings.warn("fastconv was built without OpenMP: the Cython kernels run on one thread",
                      RuntimeWarning, stacklevel=3)


_warn_if_serial()
