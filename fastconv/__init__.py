"""fastconv: fast convolution and pooling kernels (Cython, Numba, CUDA) under a Keras-style API.

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
                                 conv_output_size, global_avg_pool2d, global_avg_pool2d_backward,
                                 max_pool2d, max_pool2d_backward)

__version__ = "0.1.0"


def _warn_if_serial():
    try:
        from fastconv.kernels.cython import threads
    except ImportError:
        return
    if not threads.openmp_enabled():
        warnings.warn("fastconv was built without OpenMP: the Cython kernels run on one thread",
                      RuntimeWarning, stacklevel=3)


_warn_if_serial()
