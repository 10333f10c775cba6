"""Direct grouped 2-D convolution, NHWC activations x HWIO weights (``kernels/README.md``).

Each public function checks its arguments in plain Python, then runs a fused (float32/float64)
kernel without the GIL, parallel over rows that one thread owns, the innermost loop running
over contiguous channels. Padded cells read as zeros; bottom/right padding is implied by the
output size.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

import numpy as np

from fastconv.kernels import _checks

# input channels per task of backward_weight
cdef enum:
    BLOCK = 8


cdef inline void _gemv_acc(Py_ssize_t n, Py_ssize_t m, const floating* a, Py_ssize_t inc,
                           const floating* b, Py_ssize_t ld, floating* y) noexcept nogil:
    """y[:n] += sum over k < m of a[k*inc] * b[k*ld:k*ld + n], four k at a time.

    Blocking the sum over k loads and stores y once per four multiply-adds.
    """
    cdef Py_ssize_t i, k
    cdef floating a0, a1, a2, a3
    cdef const floating* b0
    for k in range(0, m - 3, 4):
        a0, a1, a2, a3 = a[k * inc], a[(k + 1) * inc], a[(k + 2) * inc], a[(k + 3) * inc]
        b0 = b + k * ld
        for i in range(n):
            y[i] += a0 * b0[i] + a1 * b0[ld + i] + a2 * b0[2 * ld + i] + a3 * b0[3 * ld + i]
    for k in range(m - m % 4, m):
        a0 = a[k * inc]
        b0 = b + k * ld
        for i in range(n):
            y[i] += a0 * b0[i]


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0, clamped at 0 from below."""
    return (a + b - 1) // b if a > 0 else 0


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups):
    """``y[n, oh, ow, o]`` = sum over taps ``(i, j)`` and the group's input channels ``c`` of
    ``x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, g*Cg + c] * w[i, j, c, o]``.

    x ``(N, H, W, C)``, w ``(KH, KW, C // groups, O)``, y ``(N, OH, OW, O)`` (overwritten).
    """
    op = "conv_direct.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    _checks.conv(op, x, w, y, "x", "y", sh, sw, pt, pl, dil_h, dil_w, groups)
    _forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups)


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups):
    """Gradient of :func:`forward` with respect to x, into ``gx`` (N, H, W, C), overwritten."""
    op = "conv_direct.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    _checks.conv(op, gx, w, gy, "gx", "gy", sh, sw, pt, pl, dil_h, dil_w, groups)
    # w as (KH, KW, O, Cg): the innermost loop then runs over contiguous input channels
    _backward_input(gy, np.ascontiguousarray(w.transpose(0, 1, 3, 2)), gx,
                    sh, sw, pt, pl, dil_h, dil_w, groups)


def backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups):
    """Gradient of :func:`forward` with respect to w, into ``gw`` ``(KH, KW, C // groups, O)``."""
    op = "conv_direct.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    _checks.conv(op, x, gw, gy, "x", "gy", sh, sw, pt, pl, dil_h, dil_w, groups)
    _backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups)


def _forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
             floating[:, :, :, ::1] y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
             Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], KH = w.shape[0], KW = w.shape[1]
    cdef Py_ssize_t Cg = w.shape[2], O = w.shape[3], OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t Og = O // groups
    cdef Py_ssize_t t, n, oh, ow, i, j, ih, iw, g, c
    cdef floating* yp
    with nogil:
        # each (n, oh) owns the output row y[n, oh]
        for t in prange(y.shape[0] * OH, schedule="static"):
            n = t // OH
            oh = t - n * OH
            for ow in range(OW):
                yp = &y[n, oh, ow, 0]
                memset(yp, 0, O * sizeof(floating))
                for i in range(KH):
                    ih = oh * sh - pt + i * dil_h
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(KW):
                        iw = ow * sw - pl + j * dil_w
                        if iw < 0 or iw >= W:
                            continue
                        for g in range(groups):
                            _gemv_acc(Og, Cg, &x[n, ih, iw, g * Cg], 1, &w[i, j, 0, g * Og], O,
                                      yp + g * Og)


def _backward_input(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] wt,
                    floating[:, :, :, ::1] gx, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                    Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups):
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3], KH = wt.shape[0]
    cdef Py_ssize_t KW = wt.shape[1], Cg = wt.shape[3], OH = gy.shape[1], OW = gy.shape[2]
    cdef Py_ssize_t Og = wt.shape[2] // groups
    cdef Py_ssize_t t, n, oh, ow, i, j, ih, iw, a, b, g
    cdef floating* gp
    with nogil:
        # gather: each (n, ih) owns the input row gx[n, ih]
        for t in prange(gx.shape[0] * H, schedule="static"):
            n = t // H
            ih = t - n * H
            for iw in range(W):
                gp = &gx[n, ih, iw, 0]
                memset(gp, 0, C * sizeof(floating))
                for i in range(KH):
                    a = ih + pt - i * dil_h
                    if a < 0 or a % sh:
                        continue
                    oh = a // sh
                    if oh >= OH:
                        continue
                    for j in range(KW):
                        b = iw + pl - j * dil_w
                        if b < 0 or b % sw:
                            continue
                        ow = b // sw
                        if ow >= OW:
                            continue
                        for g in range(groups):
                            _gemv_acc(Cg, Og, &gy[n, oh, ow, g * Og], 1, &wt[i, j, g * Og, 0], Cg,
                                      gp + g * Cg)


def _backward_weight(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                     floating[:, :, :, ::1] gw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                     Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], KW = gw.shape[1]
    cdef Py_ssize_t Cg = gw.shape[2], O = gw.shape[3], OH = gy.shape[1], OW = gy.shape[2]
    cdef Py_ssize_t Og = O // groups, blocks = (Cg + BLOCK - 1) // BLOCK
    cdef Py_ssize_t t, n, oh, i, j, ih, g, c, c0, c1, lo, hi
    with nogil:
        # each (i, j, block of input channels) owns the weight rows gw[i, j, c0:c1]
        for t in prange(gw.shape[0] * KW * blocks, schedule="static"):
            i = t // (KW * blocks)
            j = t // blocks - i * KW
            c0 = (t - (i * KW + j) * blocks) * BLOCK
            c1 = min(c0 + BLOCK, Cg)
            memset(&gw[i, j, c0, 0], 0, (c1 - c0) * O * sizeof(floating))
            # the output columns [lo, hi) whose tap j reads a real input column
            lo = _ceil_div(pl - j * dil_w, sw)
            hi = min(_ceil_div(W + pl - j * dil_w, sw), OW)
            if lo >= hi:
                continue
            for n in range(x.shape[0]):
                for oh in range(OH):
                    ih = oh * sh - pt + i * dil_h
                    if ih < 0 or ih >= H:
                        continue
                    # the block's channels reuse this stretch of gy from cache
                    for g in range(groups):
                        for c in range(c0, c1):
                            _gemv_acc(Og, hi - lo,
                                      &x[n, ih, lo * sw - pl + j * dil_w, g * Cg + c], sw * C,
                                      &gy[n, oh, lo, g * Og], O, &gw[i, j, c, g * Og])
