"""Direct convolution, NHWC activations x HWIO weights, Numba backend (``kernels/README.md``).

Each public function checks its arguments in plain Python, then calls a private kernel that
Numba compiles on first use (one specialisation per dtype) and caches on disk.
Padded cells read as zeros; the bottom/right padding is implied by the output size.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: it measured no clear gain, and its nnan/ninf flags would
# break NaN propagation.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups):
    """``y[n, oh, ow, o] = sum x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, c] * w[i, j, c', o]``.

    x ``(N, H, W, C)``, w ``(KH, KW, C // groups, O)``, y ``(N, OH, OW, O)`` (overwritten).
    """
    op = "conv_direct.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    geo = _checks.conv(op, x, w, y, "x", "y", sh, sw, pt, pl, dil_h, dil_w, groups)
    _forward(x, w, y, *geo)


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups):
    """Gradient of :func:`forward` with respect to x, into ``gx`` ``(N, H, W, C)`` (overwritten)."""
    op = "conv_direct.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    geo = _checks.conv(op, gx, w, gy, "gx", "gy", sh, sw, pt, pl, dil_h, dil_w, groups)
    _backward_input(gy, w, gx, *geo)


def backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups):
    """Gradient of :func:`forward` with respect to w, into ``gw`` ``(KH, KW, C // groups, O)``."""
    op = "conv_direct.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    geo = _checks.conv(op, x, gw, gy, "x", "gy", sh, sw, pt, pl, dil_h, dil_w, groups)
    _backward_weight(gy, x, gw, *geo)


# ------------------------------------------------------------------------------------ kernels
# The innermost loops run over 1-D row views from index 0, which LLVM vectorises; written as 4-D
# indexing over ``range(g*og, (g+1)*og)`` they did not vectorise (forward 8x slower, measured).

@numba.njit(**_JIT)
def _forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups):
    n_img, h, wd, c = x.shape
    kh, kw, cg, o = w.shape
    oh_n, ow_n = y.shape[1], y.shape[2]
    og = o // groups
    # each (n, oh) owns the output row y[n, oh]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        acc = np.empty(o, y.dtype)  # a private accumulator: LLVM need not guard against aliasing
        for ow in range(ow_n):
            for k in range(o):
                acc[k] = 0
            for i in range(kh):
                ih = oh * sh - pt + i * dil_h
                if ih < 0 or ih >= h:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j * dil_w
                    if iw < 0 or iw >= wd:
                        continue
                    xr = x[n, ih, iw]
                    for g in range(groups):
                        ag = acc[g * og:(g + 1) * og]
                        for ci in range(cg):
                            xv = xr[g * cg + ci]
                            wr = w[i, j, ci, g * og:(g + 1) * og]
                            for k in range(og):
                                ag[k] += xv * wr[k]
            yr = y[n, oh, ow]
            for k in range(o):
                yr[k] = acc[k]


@numba.njit(**_JIT)
def _backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups):
    n_img, h, wd, c = gx.shape
    kh, kw, cg, o = w.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    og = o // groups
    # w transposed to (KH, KW, O, Cg) so that the innermost loop runs over contiguous channels
    wt = np.empty((kh, kw, o, cg), w.dtype)
    for i in range(kh):
        for j in range(kw):
            for ci in range(cg):
                for k in range(o):
                    wt[i, j, k, ci] = w[i, j, ci, k]
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
                    gyr = gy[n, oh, ow]
                    for g in range(groups):
                        gxg = gx[n, ih, iw, g * cg:(g + 1) * cg]
                        for k in range(g * og, (g + 1) * og):
                            gv = gyr[k]
                            wr = wt[i, j, k]
                            for ci in range(cg):
                                gxg[ci] += gv * wr[ci]


# input channels per task of backward_weight: a task reuses each row of gy for this many
# channels, while KH*KW*ceil(Cg/_CB) tasks keep the threads busy
_CB = 8


@numba.njit(**_JIT)
def _backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups):
    n_img, h, wd, c = x.shape
    kh, kw, cg, o = gw.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    og = o // groups
    nb = (cg + _CB - 1) // _CB
    # each task (i, j, block of cg) owns gw[i, j, cb0:cb1, :]
    for t in prange(kh * kw * nb):
        i = t // (kw * nb)
        r = t - i * (kw * nb)
        j = r // nb
        cb0 = (r - j * nb) * _CB
        cb1 = min(cb0 + _CB, cg)
        for ci in range(cb0, cb1):
            gwr = gw[i, j, ci]
            for k in range(o):
                gwr[k] = 0
        for n in range(n_img):
            for oh in range(oh_n):
                ih = oh * sh - pt + i * dil_h
                if ih < 0 or ih >= h:
                    continue
                for ow in range(ow_n):
                    iw = ow * sw - pl + j * dil_w
                    if iw < 0 or iw >= wd:
                        continue
                    xr = x[n, ih, iw]
                    gyr = gy[n, oh, ow]
                    for g in range(groups):
                        gyg = gyr[g * og:(g + 1) * og]
                        for ci in range(cb0, cb1):
                            xv = xr[g * cg + ci]
                            gwg = gw[i, j, ci, g * og:(g + 1) * og]
                            for k in range(og):
                                gwg[k] += xv * gyg[k]
