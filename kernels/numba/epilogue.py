"""Elementwise passes around the convolutions, Numba backend (``kernels/README.md``): bias +
ReLU in place, the ReLU gradient, and dropout by the stateless (seed, index) hash of
``kernels/cuda/dropout.cu``, bit for bit.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks

_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")
_CHUNK = 16384   # elements per parallel task
_U = np.uint64


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
    _dropout(x.reshape(-1), out.reshape(-1), _U(seed), threshold, x.dtype.type(scale))


@numba.njit(**_JIT)
def _bias_act(y, b, bias, relu):
    for r in prange(y.shape[0]):
        bias_act_row(y[r], b, bias, relu)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def bias_act_row(y, b, bias, relu):
    """``y[o] += b[o]`` when ``bias``, then ReLU when ``relu`` (NaN stays NaN), in place."""
    for o in range(y.shape[0]):
        v = y[o]
        if bias:
            v += b[o]
        if relu and v < 0:
            v = 0
        y[o] = v


@numba.njit(**_JIT)
def _relu_backward(gy, y, gx):
    n = gy.shape[0]
    for t in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(t * _CHUNK, min(n, (t + 1) * _CHUNK)):
            gx[i] = gy[i] * (1 if y[i] > 0 else 0)


@numba.njit(inline="always")
def _keep(seed, i, threshold):
    z = seed + _U(0x9E3779B97F4A7C15) * _U(i + 1)
    z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    z ^= z >> _U(31)
    return np.int64(z >> _U(32)) >= threshold


@numba.njit(**_JIT)
def _dropout(x, out, seed, threshold, scale):
    n = x.shape[0]
    for t in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(t * _CHUNK, min(n, (t + 1) * _CHUNK)):
            out[i] = x[i] * (scale if _keep(seed, i, threshold) else 0)
