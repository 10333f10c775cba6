"""The Numba kernels over NumPy arrays, BLAS for the GEMMs; each kernel compiles on first use."""
from types import SimpleNamespace

import numba  # a missing Numba must fail here, as ImportError
import numpy

from fastconv._config import get_num_threads
from fastconv.backends._native import NativeBackend
from fastconv.kernels.numba import (conv_direct, depthwise, epilogue, im2col, pointwise, pool,
                                    winograd)

BACKEND = NativeBackend("numba", SimpleNamespace(
    conv_direct=conv_direct, depthwise=depthwise, epilogue=epilogue, im2col=im2col,
    pointwise=pointwise, pool=pool, winograd=winograd), numpy,
    set_num_threads=numba.set_num_threads)

numba.set_num_threads(min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
