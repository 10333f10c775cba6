"""Max and average 2-D pooling and their gradients, NHWC (``kernels/README.md``).

Padded cells are absent: max ignores them and average divides by the number of real cells in
the window (Keras' rule); every window must hold at least one real cell. Max pooling's winner
is the window's first NaN, else its first maximum, scanning rows then columns; its gradient
goes to the winner only. Each public function checks its arguments in plain Python, then runs
a fused (float32/float64) kernel without the GIL whose innermost loop runs over channels.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.string cimport memset

import numpy as np

from fastconv.kernels import _checks

# channels per task of max_backward: tasks are (image, channel block) pairs
cdef enum:
    BLOCK = 64


cdef inline Py_ssize_t _first(Py_ssize_t start) noexcept nogil:
    """First window offset whose cell ``start + offset`` is not before the input."""
    return -start if start < 0 else 0


cdef inline Py_ssize_t _stop(Py_ssize_t start, Py_ssize_t k, Py_ssize_t size) noexcept nogil:
    """One past the last window offset whose cell ``start + offset`` lies inside the input."""
    return k if start + k <= size else size - start


def max_forward(x, y, kh, kw, sh, sw, pt, pl):
    """``y[n, oh, ow, c]`` = the winner of the window's real cells; y is overwritten."""
    op = "pool.max_forward"
    _checks.arrays(op, {"x": (x, 4)}, {"y": (y, 4)})
    _checks.pool(op, x.shape, y.shape, "x", "y", kh, kw, sh, sw, pt, pl)
    _max_forward(x, y, kh, kw, sh, sw, pt, pl)


def max_backward(x, gy, gx, kh, kw, sh, sw, pt, pl):
    """Gradient of :func:`max_forward`: ``gx`` (overwritten) gets each ``gy`` at its winner."""
    op = "pool.max_backward"
    _checks.arrays(op, {"x": (x, 4), "gy": (gy, 4)}, {"gx": (gx, 4)})
    _checks.pool(op, x.shape, gy.shape, "x", "gy", kh, kw, sh, sw, pt, pl)
    _checks.shape(op, "gx", gx, x.shape)
    # per (image, channel) scratch: the window's winning value and its gradient not yet placed
    _max_backward(x, gy, gx, np.empty(x.shape[::3], x.dtype), np.empty(x.shape[::3], x.dtype),
                  kh, kw, sh, sw, pt, pl)


def avg_forward(x, y, kh, kw, sh, sw, pt, pl):
    """``y[n, oh, ow, c]`` = mean of the window's real cells: x ``(N, H, W, C)``, y overwritten."""
    op = "pool.avg_forward"
    _checks.arrays(op, {"x": (x, 4)}, {"y": (y, 4)})
    _checks.pool(op, x.shape, y.shape, "x", "y", kh, kw, sh, sw, pt, pl)
    _avg_forward(x, y, kh, kw, sh, sw, pt, pl)


def avg_backward(gy, gx, kh, kw, sh, sw, pt, pl):
    """Gradient of :func:`avg_forward`, into ``gx`` ``(N, H, W, C)`` (overwritten)."""
    op = "pool.avg_backward"
    _checks.arrays(op, {"gy": (gy, 4)}, {"gx": (gx, 4)})
    _checks.pool(op, gx.shape, gy.shape, "gx", "gy", kh, kw, sh, sw, pt, pl)
    _avg_backward(gy, gx, kh, kw, sh, sw, pt, pl)


def _max_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, Py_ssize_t KH,
                 Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t t, n, oh, ow, i, j, c, h0, w0
    cdef floating v, best
    cdef floating* yp
    cdef const floating* xp
    with nogil:
        # each (n, oh) owns the output row y[n, oh]
        for t in prange(y.shape[0] * OH, schedule="static"):
            n = t // OH
            oh = t - n * OH
            h0 = oh * sh - pt
            for ow in range(OW):
                w0 = ow * sw - pl
                yp = &y[n, oh, ow, 0]
                for c in range(C):
                    yp[c] = -INFINITY
                for i in range(_first(h0), _stop(h0, KH, H)):
                    for j in range(_first(w0), _stop(w0, KW, W)):
                        xp = &x[n, h0 + i, w0 + j, 0]
                        for c in range(C):
                            v = xp[c]
                            best = yp[c]
                            # a later cell wins if the best is no NaN and the cell is larger or
                            # NaN: a branch-free select (bitwise operators) that vectorises
                            yp[c] = v if (best == best) & (not v <= best) else best


def _max_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                  floating[:, :, :, ::1] gx, floating[:, ::1] best, floating[:, ::1] pending,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                  Py_ssize_t pl):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = gy.shape[1], OW = gy.shape[2], blocks = (C + BLOCK - 1) // BLOCK
    cdef Py_ssize_t t, n, oh, ow, i, j, c, c0, nc, h0, w0
    cdef floating v, b, f, g
    cdef bint hit
    cdef floating* bp
    cdef floating* fp
    cdef floating* gxp
    cdef const floating* xp
    cdef const floating* gp
    with nogil:
        # each (n, channel block) owns gx[n, :, :, c0:c0 + nc] and its scratch rows
        for t in prange(x.shape[0] * blocks, schedule="static"):
            n = t // blocks
            c0 = (t - n * blocks) * BLOCK
            nc = min(BLOCK, C - c0)
            bp = &best[n, c0]
            fp = &pending[n, c0]
            for i in range(H):
                for j in range(W):
                    memset(&gx[n, i, j, c0], 0, nc * sizeof(floating))
            for oh in range(OH):
                h0 = oh * sh - pt
                for ow in range(OW):
                    w0 = ow * sw - pl
                    # pass 1: the winner's value, as in max_forward
                    for c in range(nc):
                        bp[c] = -INFINITY
                    for i in range(_first(h0), _stop(h0, KH, H)):
                        for j in range(_first(w0), _stop(w0, KW, W)):
                            xp = &x[n, h0 + i, w0 + j, c0]
                            for c in range(nc):
                                v = xp[c]
                                b = bp[c]
                                bp[c] = v if (b == b) & (not v <= b) else b
                    # pass 2: the first cell holding that value (NaN matching NaN) takes the
                    # pending gradient (selects, not branches: which cell wins is unpredictable)
                    gp = &gy[n, oh, ow, c0]
                    for c in range(nc):
                        fp[c] = gp[c]
                    for i in range(_first(h0), _stop(h0, KH, H)):
                        for j in range(_first(w0), _stop(w0, KW, W)):
                            xp = &x[n, h0 + i, w0 + j, c0]
                            gxp = &gx[n, h0 + i, w0 + j, c0]
                            for c in range(nc):
                                v = xp[c]
                                b = bp[c]
                                f = fp[c]
                                g = gxp[c]
                                hit = v == b or (v != v and b != b)
                                gxp[c] = g + f if hit else g
                                fp[c] = 0 if hit else f


def _avg_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, Py_ssize_t KH,
                 Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t t, n, oh, ow, i, j, c, h0, w0
    cdef floating cells
    cdef floating* yp
    cdef const floating* xp
    with nogil:
        # each (n, oh) owns the output row y[n, oh]
        for t in prange(y.shape[0] * OH, schedule="static"):
            n = t // OH
            oh = t - n * OH
            h0 = oh * sh - pt
            for ow in range(OW):
                w0 = ow * sw - pl
                yp = &y[n, oh, ow, 0]
                memset(yp, 0, C * sizeof(floating))
                for i in range(_first(h0), _stop(h0, KH, H)):
                    for j in range(_first(w0), _stop(w0, KW, W)):
                        xp = &x[n, h0 + i, w0 + j, 0]
                        for c in range(C):
                            yp[c] += xp[c]
                cells = ((_stop(h0, KH, H) - _first(h0)) * (_stop(w0, KW, W) - _first(w0)))
                for c in range(C):
                    yp[c] /= cells


def _avg_backward(const floating[:, :, :, ::1] gy, floating[:, :, :, ::1] gx, Py_ssize_t KH,
                  Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl):
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3]
    cdef Py_ssize_t OH = gy.shape[1], OW = gy.shape[2]
    cdef Py_ssize_t t, n, oh, ow, i, j, c, ih, iw, a, b, h0, w0
    cdef floating cells
    cdef floating* gp
    cdef const floating* yp
    with nogil:
        # gather: each (n, ih) owns the input row gx[n, ih]
        for t in prange(gx.shape[0] * H, schedule="static"):
            n = t // H
            ih = t - n * H
            for iw in range(W):
                gp = &gx[n, ih, iw, 0]
                memset(gp, 0, C * sizeof(floating))
                for i in range(KH):
                    a = ih + pt - i
                    if a < 0 or a % sh:
                        continue
                    oh = a // sh
                    if oh >= OH:
                        continue
                    h0 = oh * sh - pt
                    for j in range(KW):
                        b = iw + pl - j
                        if b < 0 or b % sw:
                            continue
                        ow = b // sw
                        if ow >= OW:
                            continue
                        w0 = ow * sw - pl
                        cells = ((_stop(h0, KH, H) - _first(h0)) * (_stop(w0, KW, W) - _first(w0)))
                        yp = &gy[n, oh, ow, 0]
                        for c in range(C):
                            gp[c] += yp[c] / cells
