"""Depthwise 2-D convolution (groups == C, depth multiplier M), NHWC (``kernels/README.md``).

Weights are ``w[KH, KW, 1, C*M]``: output channel ``c*M + m`` reads input channel ``c``. Each
public function checks its arguments in plain Python, then runs a fused (float32/float64) kernel
without the GIL whose innermost loop runs over contiguous channels (M == 1 is a plain
element-wise product that vectorises). Padded cells read as zeros.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from fastconv.kernels.cython.threads import get_max_threads
from fastconv.kernels import _checks


cdef inline void _madd(Py_ssize_t C, Py_ssize_t M, const floating* a, const floating* b,
                       floating* out) noexcept nogil:
    """out[c*M + m] += a[c] * b[c*M + m] for c < C, m < M."""
    cdef Py_ssize_t c, m
    cdef floating v
    if M == 1:
        for c in range(C):
            out[c] += a[c] * b[c]
    else:
        for c in range(C):
            v = a[c]
            for m in range(M):
                out[c * M + m] += v * b[c * M + m]


cdef inline void _dot_add(Py_ssize_t C, Py_ssize_t M, const floating* a, const floating* b,
                          floating* out) noexcept nogil:
    """out[c] += sum over m of a[c*M + m] * b[c*M + m] for c < C."""
    cdef Py_ssize_t c, m
    cdef floating s
    if M == 1:
        for c in range(C):
            out[c] += a[c] * b[c]
    else:
        for c in range(C):
            s = 0
            for m in range(M):
                s = s + a[c * M + m] * b[c * M + m]
            out[c] += s


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w):
    """``y[n, oh, ow, c*M + m]`` = sum over taps ``(i, j)`` of
    ``x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, c] * w[i, j, 0, c*M + m]``.

    x ``(N, H, W, C)``, w ``(KH, KW, 1, C*M)``, y ``(N, OH, OW, C*M)`` (overwritten).
    """
    op = "depthwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    _checks.depthwise(op, x, w, y, "x", "y", sh, sw, pt, pl, dil_h, dil_w)
    _forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w)


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w):
    """Gradient of :func:`forward` with respect to x, into ``gx`` (N, H, W, C), overwritten."""
    op = "depthwise.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    _checks.depthwise(op, gx, w, gy, "gx", "gy", sh, sw, pt, pl, dil_h, dil_w)
    _backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w)


def backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w):
    """Gradient of :func:`forward` with respect to w, into ``gw`` ``(KH, KW, 1, C*M)``."""
    op = "depthwise.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    _checks.depthwise(op, x, gw, gy, "x", "gy", sh, sw, pt, pl, dil_h, dil_w)
    # input channels per task: one block per thread, but at least 64 output channels
    c, m = x.shape[3], gw.shape[3] // x.shape[3]
    block = max(-(-64 // m), -(-c // get_max_threads()))
    _backward_weight(gy, x, gw, block, sh, sw, pt, pl, dil_h, dil_w)


def _forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
             floating[:, :, :, ::1] y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
             Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], KH = w.shape[0]
    cdef Py_ssize_t KW = w.shape[1], O = w.shape[3], OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t M = O // C
    cdef Py_ssize_t t, n, oh, ow, i, j, ih, iw
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
                        if 0 <= iw < W:
                            _madd(C, M, &x[n, ih, iw, 0], &w[i, j, 0, 0], yp)


def _backward_input(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                    floating[:, :, :, ::1] gx, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                    Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w):
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3], KH = w.shape[0]
    cdef Py_ssize_t KW = w.shape[1], OH = gy.shape[1], OW = gy.shape[2]
    cdef Py_ssize_t M = w.shape[3] // C
    cdef Py_ssize_t t, n, oh, ow, i, j, ih, iw, a, b
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
                        if ow < OW:
                            _dot_add(C, M, &gy[n, oh, ow, 0], &w[i, j, 0, 0], gp)


def _backward_weight(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                     floating[:, :, :, ::1] gw, Py_ssize_t block, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], KH = gw.shape[0]
    cdef Py_ssize_t KW = gw.shape[1], OH = gy.shape[1], OW = gy.shape[2]
    cdef Py_ssize_t M = gw.shape[3] // C, blocks = (C + block - 1) // block
    cdef Py_ssize_t t, n, oh, ow, i, j, ih, iw, c0, nc
    cdef const floating* gyp
    with nogil:
        # each block of input channels owns gw[:, :, 0, c0*M:(c0 + nc)*M] and runs every tap,
        # so that it reads each row of gy once
        for t in prange(blocks, schedule="static"):
            c0 = t * block
            nc = min(block, C - c0)
            for i in range(KH):
                for j in range(KW):
                    memset(&gw[i, j, 0, c0 * M], 0, nc * M * sizeof(floating))
            for n in range(x.shape[0]):
                for oh in range(OH):
                    for ow in range(OW):
                        gyp = &gy[n, oh, ow, c0 * M]
                        for i in range(KH):
                            ih = oh * sh - pt + i * dil_h
                            if ih < 0 or ih >= H:
                                continue
                            for j in range(KW):
                                iw = ow * sw - pl + j * dil_w
                                if 0 <= iw < W:
                                    _madd(nc, M, &x[n, ih, iw, c0], gyp, &gw[i, j, 0, c0 * M])
