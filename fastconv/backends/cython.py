"""The compiled Cython/OpenMP kernels over NumPy arrays, BLAS for the GEMMs."""
from types import SimpleNamespace

import numpy

from fastconv.backends._native import NativeBackend
from fastconv.kernels.cython import (conv_direct, depthwise, epilogue, im2col, pointwise, pool,
                                     threads, winograd)

BACKEND = NativeBackend("cython", SimpleNamespace(
    conv_direct=conv_direct, depthwise=depthwise, epilogue=epilogue, im2col=im2col,
    pointwise=pointwise, pool=pool, winograd=winograd), numpy,
    set_num_threads=threads.set_num_threads)
