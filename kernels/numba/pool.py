"""Max and average pooling, NHWC, Numba backend (``kernels/README.md``).

Padded cells are absent: max ignores them, average divides by the number of real cells
(Keras' rule); the checks reject geometries with a window that holds no real cell. The max
window's winner is its first NaN if it holds one, else its first maximum, scanning rows then
columns (NumPy's ``argmax``); the backward pass sends the gradient to the winner only.
No ``fastmath`` anywhere: it would break the NaN rule.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: it measured no clear gain, and its nnan/ninf flags would
# break NaN propagation.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")

# channels per task of the backward passes: tasks (n, channel block) own disjoint cells of gx
_CB = 64


def max_forward(x, y, kh, kw, sh, sw, pt, pl):
    """``y[n, oh, ow, c]`` = the winner of the window's real cells (overwritten)."""
    op = "pool.max_forward"
    _checks.arrays(op, {"x": (x, 4)}, {"y": (y, 4)})
    _max_forward(x, y, *_checks.pool(op, x.shape, y.shape, "x", "y", kh, kw, sh, sw, pt, pl))


def max_backward(x, gy, gx, kh, kw, sh, sw, pt, pl):
    """``gx`` (overwritten) = each ``gy`` sent to its window's winner in ``x``, summed."""
    op = "pool.max_backward"
    _checks.arrays(op, {"x": (x, 4), "gy": (gy, 4)}, {"gx": (gx, 4)})
    _checks.shape(op, "gx", gx, x.shape)
    geo = _checks.pool(op, x.shape, gy.shape, "x", "gy", kh, kw, sh, sw, pt, pl)
    _max_backward(x, gy, gx, *geo)


def avg_forward(x, y, kh, kw, sh, sw, pt, pl):
    """``y[n, oh, ow, c]`` = the mean of the window's real cells (overwritten)."""
    op = "pool.avg_forward"
    _checks.arrays(op, {"x": (x, 4)}, {"y": (y, 4)})
    _avg_forward(x, y, *_checks.pool(op, x.shape, y.shape, "x", "y", kh, kw, sh, sw, pt, pl))


def avg_backward(gy, gx, kh, kw, sh, sw, pt, pl):
    """``gx`` (overwritten) = each ``gy`` divided among its window's real cells, summed."""
    op = "pool.avg_backward"
    _checks.arrays(op, {"gy": (gy, 4)}, {"gx": (gx, 4)})
    geo = _checks.pool(op, gx.shape, gy.shape, "gx", "gy", kh, kw, sh, sw, pt, pl)
    _avg_backward(gy, gx, *geo)


# ------------------------------------------------------------------------------------ kernels
@numba.njit(inline="always")
def _span(o, k, s, p, size):
    """The real cells ``[lo, hi)`` of window ``o`` along one axis."""
    lo = o * s - p
    return max(lo, 0), min(lo + k, size)


@numba.njit(inline="always")
def _beats(v, best):
    """True if ``v``, met later in the scan, takes the window from ``best``: a first NaN or a
    strictly greater value (ties keep the first)."""
    return (v > best) | ((v != v) & (best == best))


@numba.njit(**_JIT)
def _max_forward(x, y, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = x.shape
    oh_n, ow_n = y.shape[1], y.shape[2]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        h0, h1 = _span(oh, kh, sh, pt, h)
        for ow in range(ow_n):
            w0, w1 = _span(ow, kw, sw, pl, wd)
            yr = y[n, oh, ow]
            xr = x[n, h0, w0]
            for k in range(c):
                yr[k] = xr[k]
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    if ih == h0 and iw == w0:
                        continue
                    xr = x[n, ih, iw]
                    for k in range(c):
                        v = xr[k]
                        best = yr[k]
                        yr[k] = v if _beats(v, best) else best


@numba.njit(**_JIT)
def _max_backward(x, gy, gx, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = x.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    nb = (c + _CB - 1) // _CB
    # each task (n, block of channels) owns gx[n, :, :, k0:k1]: windows overlap, channels don't
    for t in prange(n_img * nb):
        n = t // nb
        k0 = (t - n * nb) * _CB
        k1 = min(k0 + _CB, c)
        best = np.empty(k1 - k0, x.dtype)
        where = np.empty(k1 - k0, np.int64)  # the winner's cell, ih*W + iw
        gxn = gx[n].reshape((h * wd, c))
        for cell in range(h * wd):
            gxr = gxn[cell, k0:k1]
            for k in range(k1 - k0):
                gxr[k] = 0
        for oh in range(oh_n):
            h0, h1 = _span(oh, kh, sh, pt, h)
            for ow in range(ow_n):
                w0, w1 = _span(ow, kw, sw, pl, wd)
                xr = x[n, h0, w0, k0:k1]
                for k in range(k1 - k0):
                    best[k] = xr[k]
                    where[k] = h0 * wd + w0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        if ih == h0 and iw == w0:
                            continue
                        xr = x[n, ih, iw, k0:k1]
                        cell = ih * wd + iw
                        for k in range(k1 - k0):
                            v = xr[k]
                            b = best[k]
                            won = _beats(v, b)
                            best[k] = v if won else b
                            where[k] = cell if won else where[k]
                gyr = gy[n, oh, ow, k0:k1]
                for k in range(k1 - k0):
                    gxn[where[k], k0 + k] += gyr[k]


@numba.njit(**_JIT)
def _avg_forward(x, y, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = x.shape
    oh_n, ow_n = y.shape[1], y.shape[2]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        h0, h1 = _span(oh, kh, sh, pt, h)
        for ow in range(ow_n):
            w0, w1 = _span(ow, kw, sw, pl, wd)
            yr = y[n, oh, ow]
            for k in range(c):
                yr[k] = 0
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    xr = x[n, ih, iw]
                    for k in range(c):
                        yr[k] += xr[k]
            count = (h1 - h0) * (w1 - w0)
            for k in range(c):
                yr[k] /= count


@numba.njit(**_JIT)
def _avg_backward(gy, gx, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = gx.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    # gy / count, once per window rather than once per cell of the window
    share = np.empty(gy.shape, gy.dtype)
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        h0, h1 = _span(oh, kh, sh, pt, h)
        for ow in range(ow_n):
            w0, w1 = _span(ow, kw, sw, pl, wd)
            count = (h1 - h0) * (w1 - w0)
            gyr = gy[n, oh, ow]
            sr = share[n, oh, ow]
            for k in range(c):
                sr[k] = gyr[k] / count
    # gather: each input row (n, ih) owns gx[n, ih] and sums the windows that hold it
    for t in prange(n_img * h):
        n = t // h
        ih = t - n * h
        for iw in range(wd):
            gxr = gx[n, ih, iw]
            for k in range(c):
                gxr[k] = 0
        # the windows oh with oh*sh - pt <= ih < oh*sh - pt + kh
        oh0 = max(0, (ih + pt - kh) // sh + 1)
        oh1 = min(oh_n, (ih + pt) // sh + 1)
        for oh in range(oh0, oh1):
            for ow in range(ow_n):
                w0, w1 = _span(ow, kw, sw, pl, wd)
                sr = share[n, oh, ow]
                for iw in range(w0, w1):
                    gxr = gx[n, ih, iw]
                    for k in range(c):
                        gxr[k] += sr[k]
