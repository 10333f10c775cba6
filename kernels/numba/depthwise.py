"""Depthwise convolution (groups == channels), NHWC, Numba backend (``kernels/README.md``).

Weights are ``w[KH, KW, 1, C*M]``: output channel ``c*M + m`` reads input channel ``c``
(depth multiplier ``M``). ``M == 1`` has its own kernels whose innermost loop runs over the
contiguous channel axis of every array: the forward pass and the input gradient are one gather
over the filter taps that reach a real cell (listed per row and per column by ``_taps``), three
column taps per pass over the output. The ``M > 1`` kernels first regroup the weights (and gy)
by multiplier, ``[..., M, C]``, so that their innermost loops are contiguous too. Each kernel
compiles on first use.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks
from fastconv.kernels._taps import taps as _taps

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: it measured no clear gain, and its nnan/ninf flags would
# break NaN propagation.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")
_CB_MIN = 64


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w):
    """``y[n, oh, ow, c*M + m] = sum_ij x[n, ih, iw, c] * w[i, j, 0, c*M + m]`` (y overwritten)."""
    op = "depthwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    m, geo = _checks.depthwise(op, x, w, y, "x", "y", sh, sw, pt, pl, dil_h, dil_w)
    if m == 1 and y.size:
        sh, sw, pt, pl, dil_h, dil_w = geo
        _gather_1(x, w, y, *_taps(y.shape[1], w.shape[0], sh, pt, dil_h, x.shape[1], False),
                  *_taps(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False))
    elif m > 1:
        _forward_m(x, w, y, m, *geo)


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w):
    """Gradient of :func:`forward` with respect to x, into ``gx`` (overwritten)."""
    op = "depthwise.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    m, geo = _checks.depthwise(op, gx, w, gy, "gx", "gy", sh, sw, pt, pl, dil_h, dil_w)
    if m == 1 and gx.size:
        sh, sw, pt, pl, dil_h, dil_w = geo
        _gather_1(gy, w, gx, *_taps(gx.shape[1], w.shape[0], sh, pt, dil_h, gy.shape[1], True),
                  *_taps(gx.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True))
    elif m > 1:
        _backward_input_m(gy, w, gx, m, *geo)


def backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w):
    """Gradient of :func:`forward` with respect to w, into ``gw`` ``(KH, KW, 1, C*M)``."""
    op = "depthwise.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    m, geo = _checks.depthwise(op, x, gw, gy, "x", "gy", sh, sw, pt, pl, dil_h, dil_w)
    c = x.shape[3]
    # input channels per task: at least _CB_MIN output channels (a long inner loop), and about
    # one task per thread
    cb = max(-(-_CB_MIN // m), -(-c // numba.get_num_threads()))
    if m == 1:
        _backward_weight_1(gy, x, gw, cb, *geo)
    else:
        _backward_weight_m(gy, x, gw, m, cb, *geo)


# ------------------------------------------------------------------------------------ kernels
# Innermost loops index 1-D row views from 0, which LLVM vectorises (see conv_direct.py).

@numba.njit(**_JIT)
def _gather_1(src, w, out, rt, rn, ct, cn):
    """``out[n, r, q]`` = sum over the taps ``rt[r, :rn[r]]`` x ``ct[q, :cn[q]]`` of
    ``src[n, cell_r, cell_q] * w[tap_r, tap_q, 0]`` (M == 1): the forward pass or the input
    gradient. Column taps go three to a pass over the channels, so that out is read and written
    a third as often."""
    n_img, oh_n, ow_n, c = out.shape
    # each (n, r) owns the output row out[n, r]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        r = t - n * oh_n
        for q in range(ow_n):
            o = out[n, r, q]
            for k in range(c):
                o[k] = 0
            for a in range(rn[r]):
                srow = src[n, rt[r, a, 0]]
                wrow = w[rt[r, a, 1]]
                b = 0
                while b + 3 <= cn[q]:
                    s0, s1, s2 = srow[ct[q, b, 0]], srow[ct[q, b + 1, 0]], srow[ct[q, b + 2, 0]]
                    w0, w1 = wrow[ct[q, b, 1], 0], wrow[ct[q, b + 1, 1], 0]
                    w2 = wrow[ct[q, b + 2, 1], 0]
                    for k in range(c):
                        o[k] += s0[k] * w0[k] + s1[k] * w1[k] + s2[k] * w2[k]
                    b += 3
                while b < cn[q]:
                    s0, w0 = srow[ct[q, b, 0]], wrow[ct[q, b, 1], 0]
                    for k in range(c):
                        o[k] += s0[k] * w0[k]
                    b += 1


@numba.njit(**_JIT)
def _by_multiplier(a, m):
    """``a[P, C*M]`` regrouped as ``out[P, M, C]``, ``out[p, r, c] = a[p, c*M + r]``: each
    multiplier's channels become contiguous, so the M > 1 kernels vectorise over ``c``."""
    p_n, cm = a.shape
    c = cm // m
    out = np.empty((p_n, m, c), a.dtype)
    for p in prange(p_n):
        ar = a[p]
        for ci in range(c):
            for r in range(m):
                out[p, r, ci] = ar[ci * m + r]
    return out


@numba.njit(**_JIT)
def _forward_m(x, w, y, m, sh, sw, pt, pl, dil_h, dil_w):
    n_img, h, wd, c = x.shape
    kh, kw = w.shape[0], w.shape[1]
    oh_n, ow_n = y.shape[1], y.shape[2]
    wt = _by_multiplier(w.reshape((kh * kw, c * m)), m).reshape((kh, kw, m, c))
    # each (n, oh) owns the output row y[n, oh]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        acc = np.empty((m, c), y.dtype)  # acc[r, c] is y[n, oh, ow, c*m + r]
        for ow in range(ow_n):
            for r in range(m):
                for ci in range(c):
                    acc[r, ci] = 0
            for i in range(kh):
                ih = oh * sh - pt + i * dil_h
                if ih < 0 or ih >= h:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j * dil_w
                    if iw < 0 or iw >= wd:
                        continue
                    xr = x[n, ih, iw]
                    for r in range(m):
                        ar = acc[r]
                        wr = wt[i, j, r]
                        for ci in range(c):
                            ar[ci] += xr[ci] * wr[ci]
            yr = y[n, oh, ow]
            for ci in range(c):
                for r in range(m):
                    yr[ci * m + r] = acc[r, ci]



@numba.njit(**_JIT)
def _backward_input_m(gy, w, gx, m, sh, sw, pt, pl, dil_h, dil_w):
    n_img, h, wd, c = gx.shape
    kh, kw = w.shape[0], w.shape[1]
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    wt = _by_multiplier(w.reshape((kh * kw, c * m)), m).reshape((kh, kw, m, c))
    gyt = _by_multiplier(gy.reshape((n_img * oh_n * ow_n, c * m)), m).reshape(
        (n_img, oh_n, ow_n, m, c))
    # gather: each (n, ih) owns the input row gx[n, ih]
    for t in prange(n_img * h):
        n = t // h
        ih = t - n * h
        for iw in range(wd):
            gxr = gx[n, ih, iw]
            for ci in range(c):
                gxr[ci] = 0
        for i in range(kh):
            a = ih + pt - i * dil_h
            if a < 0 or a % sh:
                continue
            oh = a // sh
            if oh >= oh_n:
                continue
            for j in range(kw):
                for ow in range(ow_n):
                    iw = ow * sw - pl + j * dil_w
                    if iw < 0 or iw >= wd:
                        continue
                    gxr = gx[n, ih, iw]
                    for r in range(m):
                        gr = gyt[n, oh, ow, r]
                        wr = wt[i, j, r]
                        for ci in range(c):
                            gxr[ci] += gr[ci] * wr[ci]


@numba.njit(**_JIT)
def _backward_weight_1(gy, x, gw, cb, sh, sw, pt, pl, dil_h, dil_w):
    n_img, h, wd, c = x.shape
    kh, kw = gw.shape[0], gw.shape[1]
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    nb = (c + cb - 1) // cb
    # each task owns the block of channels [c0, c1), gw[:, :, 0, c0:c1], and runs every filter
    # tap, so that it reads gy and x once
    for t in prange(nb):
        c0 = t * cb
        c1 = min(c0 + cb, c)
        for i in range(kh):
            for j in range(kw):
                gwr = gw[i, j, 0, c0:c1]
                for k in range(c1 - c0):
                    gwr[k] = 0
        for n in range(n_img):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    gyr = gy[n, oh, ow, c0:c1]
                    for i in range(kh):
                        ih = oh * sh - pt + i * dil_h
                        if ih < 0 or ih >= h:
                            continue
                        for j in range(kw):
                            iw = ow * sw - pl + j * dil_w
                            if iw < 0 or iw >= wd:
                                continue
                            gwr = gw[i, j, 0, c0:c1]
                            xr = x[n, ih, iw, c0:c1]
                            for k in range(c1 - c0):
                                gwr[k] += xr[k] * gyr[k]


@numba.njit(**_JIT)
def _backward_weight_m(gy, x, gw, m, cb, sh, sw, pt, pl, dil_h, dil_w):
    n_img, h, wd, c = x.shape
    kh, kw = gw.shape[0], gw.shape[1]
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    gyt = _by_multiplier(gy.reshape((n_img * oh_n * ow_n, c * m)), m).reshape(
        (n_img, oh_n, ow_n, m, c))
    nb = (c + cb - 1) // cb
    # each task owns the block of input channels [c0, c1), gw[:, :, 0, c0*m:c1*m]
    for t in prange(nb):
        c0 = t * cb
        c1 = min(c0 + cb, c)
        acc = np.zeros((kh, kw, m, c1 - c0), gw.dtype)  # acc[i, j, r, k]: gw[i, j, 0, (c0+k)*m + r]
        for n in range(n_img):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    for i in range(kh):
                        ih = oh * sh - pt + i * dil_h
                        if ih < 0 or ih >= h:
                            continue
                        for j in range(kw):
                            iw = ow * sw - pl + j * dil_w
                            if iw < 0 or iw >= wd:
                                continue
                            xr = x[n, ih, iw, c0:c1]
                            for r in range(m):
                                ar = acc[i, j, r]
                                gr = gyt[n, oh, ow, r, c0:c1]
                                for k in range(c1 - c0):
                                    ar[k] += xr[k] * gr[k]
        for i in range(kh):
            for j in range(kw):
                gwr = gw[i, j, 0]
                for k in range(c1 - c0):
                    for r in range(m):
                        gwr[(c0 + k) * m + r] = acc[i, j, r, k]
