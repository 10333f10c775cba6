"""The compiled Cython/OpenMP kernels over NumPy arrays, BLAS for the GEMMs."""
from types import SimpleNamespace

import numpy

from fastconv.backends._native import NativeBackend
from fastconv.kernels.cython import conv_direct, depthwise, im2col, pool, threads

BACKEND = NativeBackend("cython", SimpleNamespace(
    conv_direct=conv_direct, im2col=im2col, depthwise=depthwise, pool=pool), numpy,
    set_num_threads=threads.set_num_threads)
