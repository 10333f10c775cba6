"""Elementwise passes around the convolutions (``kernels/README.md``): bias + ReLU in place on
a convolution's output, the ReLU gradient, and dropout by a stateless hash of (seed, index) --
the mask of ``kernels/cuda/dropout.cu``, bit for bit, so it is recomputed, not stored, in the
backward pass. One parallel pass each, without the GIL.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t

from fastconv.kernels import _checks

cdef extern from *:
    """
    #include "fc_isa.h"
    /* out[i] = x[i] * (scale or 0) for i in [lo, hi): element i is kept when SplitMix64's
       finaliser of seed + golden * (i + 1) has its top 32 bits >= threshold. The AVX2 clone
       vectorises the 64-bit hash. */
    #define FC_DROPOUT(T)                                                                    \\
    FC_CLONES static void fc_dropout_##T(const T* x, T* out, Py_ssize_t lo, Py_ssize_t hi,  \\
                                         uint64_t seed, int64_t threshold, T scale) {       \\
        for (Py_ssize_t i = lo; i < hi; i++) {                                              \\
            uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);                 \\
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;                                     \\
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;                                     \\
            z ^= z >> 31;                                                                   \\
            out[i] = x[i] * ((int64_t)(z >> 32) >= threshold ? scale : (T)0);               \\
        }                                                                                   \\
    }
    FC_DROPOUT(float)
    FC_DROPOUT(double)
    #include "fc_epilogue.h"
    """
    void fc_epilogue_float(Py_ssize_t n, Py_ssize_t O, const float* b, int relu,
                           float* y) noexcept nogil
    void fc_epilogue_double(Py_ssize_t n, Py_ssize_t O, const double* b, int relu,
                            double* y) noexcept nogil
    void fc_dropout_float(const float* x, float* out, Py_ssize_t lo, Py_ssize_t hi,
                          uint64_t seed, int64_t threshold, float scale) noexcept nogil
    void fc_dropout_double(const double* x, double* out, Py_ssize_t lo, Py_ssize_t hi,
                           uint64_t seed, int64_t threshold, double scale) noexcept nogil

# elements per parallel task: enough to amortise the hand-out, small enough to split small arrays
cdef Py_ssize_t _CHUNK = 16384


def bias_act(y, b, relu):
    """In place over ``y[..., O]``: ``y += b`` (``b[O]``; skipped when None), then ReLU when
    ``relu`` (NaN stays NaN)."""
    op = "epilogue.bias_act"
    channels = _checks.bias_act(op, y, b)
    if y.size and (b is not None or relu):
        _bias_act(y.reshape(y.size // channels, channels),
                  np.empty(0, y.dtype) if b is None else b, b is not None, bool(relu))


def relu_backward(gy, y, gx):
    """``gx = gy * (y > 0)`` (overwritten)."""
    _checks.elementwise("epilogue.relu_backward", {"gy": gy, "y": y}, {"gx": gx})
    _relu_backward(gy.reshape(-1), y.reshape(-1), gx.reshape(-1))


def dropout(x, out, seed, threshold, scale):
    """``out = x * mask``: ``scale`` where the hash of (seed, flat index) keeps the element
    (its top 32 bits >= ``threshold`` = rate * 2**32), else 0 (overwritten)."""
    op = "epilogue.dropout"
    _checks.elementwise(op, {"x": x}, {"out": out})
    seed, threshold = _checks.dropout(op, seed, threshold)
    _dropout(x.reshape(-1), out.reshape(-1), seed, threshold, scale)


def _bias_act(floating[:, ::1] y, const floating[::1] b, bint bias, bint relu):
    cdef Py_ssize_t rows = y.shape[0], O = y.shape[1], step = max(1, _CHUNK // O), t, r0
    with nogil:
        for t in prange((rows + step - 1) // step, schedule="static"):
            r0 = t * step
            if floating is float:
                fc_epilogue_float(min(step, rows - r0), O, &b[0] if bias else NULL, relu,
                                  &y[r0, 0])
            else:
                fc_epilogue_double(min(step, rows - r0), O, &b[0] if bias else NULL, relu,
                                   &y[r0, 0])


def _relu_backward(const floating[::1] gy, const floating[::1] y, floating[::1] gx):
    cdef Py_ssize_t n = gy.shape[0], t, i, end
    with nogil:
        for t in prange((n + _CHUNK - 1) // _CHUNK, schedule="static"):
            end = min(n, (t + 1) * _CHUNK)
            for i in range(t * _CHUNK, end):
                gx[i] = gy[i] * (1 if y[i] > 0 else 0)


def _dropout(const floating[::1] x, floating[::1] out, uint64_t seed, int64_t threshold,
             floating scale):
    cdef Py_ssize_t n = x.shape[0], t, end
    if n == 0:
        return
    with nogil:
        for t in prange((n + _CHUNK - 1) // _CHUNK, schedule="static"):
            end = min(n, (t + 1) * _CHUNK)
            if floating is float:
                fc_dropout_float(&x[0], &out[0], t * _CHUNK, end, seed, threshold, scale)
            else:
                fc_dropout_double(&x[0], &out[0], t * _CHUNK, end, seed, threshold, scale)
