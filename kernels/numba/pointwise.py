"""1x1 convolution without padding, NHWC x HWIO, Numba backend (``kernels/README.md``).

The algorithm of ``kernels/cython/pointwise.pyx`` (each pixel read once, outputs overwritten,
tasks split statically, per-thread partial weight gradients added in a fixed order), with one
output row per task, and each pass running along a long contiguous axis, as LLVM vectorises it
(Numba cannot keep a register tile of pixels x 16 outputs: that form compiled to scalar code,
5-10x slower):
the forward pass is a dot product of the pixel's input channels with each output's weights
(``w^T``), two outputs at a time; the input gradient adds four ``gy`` values times their rows of
``w^T`` into the pixel's row of ``gx``; the weight gradient adds four pixels' ``dy`` values times
their rows of x into the rows of ``gw^T``. ``fastmath`` is only ``reassoc`` (the dot products'
vector sums) and ``contract`` (FMA): NaN and infinities propagate. Each kernel compiles on first
use.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks

_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy",
            fastmath={"reassoc", "contract"})
_SERIAL = dict(_JIT, parallel=False)
MAX_OUTPUTS = 16    # outputs per group up to which fastconv's 1x1 algorithm runs these kernels
#                     (measured: 0.5-0.8x the GEMM path from 32 up)


def _wt(w):
    """``w[0, 0]^T`` ``(O, Cg)``: output ``o`` of group ``o // Og`` reads its row."""
    return np.ascontiguousarray(w[0, 0].T)


def forward(x, w, y, sh, sw, groups, b=None, relu=False):
    """``y[n, i, j] = act(x[n, i*sh, j*sw] @ w[0, 0] + b)`` per group (ReLU when ``relu``).

    x ``(N, H, W, C)``, w ``(1, 1, C // groups, O)``, y ``(N, ceil(H/sh), ceil(W/sw), O)``
    (overwritten), b ``(O,)`` or None.
    """
    op = "pointwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    sh, sw, groups = _checks.pointwise(op, x, w, y, "x", "y", sh, sw, groups)
    _checks.bias(op, b, y)
    if y.size:
        _run(x, y, _wt(w), np.zeros(w.shape[3], x.dtype) if b is None else b,
             bool(relu), groups, sh, sw, False)


def backward_input(gy, w, gx, sh, sw, groups):
    """Gradient of :func:`forward` (without its epilogue) with respect to x, into ``gx``
    ``(N, H, W, C)`` (overwritten: zeros at the pixels no output reads)."""
    op = "pointwise.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    sh, sw, groups = _checks.pointwise(op, gx, w, gy, "gx", "gy", sh, sw, groups)
    if gx.size:
        _run(gy, gx, _wt(w), np.zeros(0, gx.dtype), False, groups, sh, sw, True)


def backward_weight(gy, x, gw, sh, sw, groups, gb=None):
    """Gradient of :func:`forward` (without its epilogue) with respect to w, into ``gw``
    ``(1, 1, C // groups, O)``: per-thread partial sums over static pixel ranges, added in a
    fixed order; and the bias's, ``gy`` summed over its pixels, into ``gb`` ``(O,)`` unless
    None."""
    op = "pointwise.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    sh, sw, groups = _checks.pointwise(op, x, gw, gy, "x", "gy", sh, sw, groups)
    if _checks.bias_grad(op, gb, gy):
        gb[...] = gy.sum(axis=(0, 1, 2))
    parts = np.zeros((numba.get_num_threads(), gw.shape[3], gw.shape[2]), x.dtype)
    if gy.size and x.size:
        _weight(x, gy, parts, groups, sh, sw)
    gw[0, 0] = parts.sum(axis=0).T


# ------------------------------------------------------------------------------------ kernels
# Every task is one output row (the input gradient: one row of gx); pixel rows are 1-D views.

@numba.njit(**_SERIAL)
def _forward_pixel(xr, wt, b, relu, groups, yr):
    """``yr[o] = act(b[o] + xr[channels of o's group] . wt[o])``, two outputs per pass."""
    cg, og = wt.shape[1], yr.shape[0] // groups
    for g in range(groups):
        x = xr[g * cg:(g + 1) * cg]
        for o in range(g * og, (g + 1) * og, 2):
            o1 = min(o + 1, (g + 1) * og - 1)   # an odd last output is summed twice
            w0, w1 = wt[o], wt[o1]
            s0, s1 = b[o], b[o1]
            for k in range(cg):
                s0 += x[k] * w0[k]
                s1 += x[k] * w1[k]
            yr[o] = 0 if relu and s0 < 0 else s0
            yr[o1] = 0 if relu and s1 < 0 else s1


@numba.njit(**_SERIAL)
def _input_pixel(dr, wt, groups, xr):
    """``xr[channels of group g] = sum over o of g: dr[o] * wt[o]``, four outputs per pass."""
    cg, og = wt.shape[1], dr.shape[0] // groups
    for g in range(groups):
        out = xr[g * cg:(g + 1) * cg]
        end = (g + 1) * og
        o = g * og
        if o + 4 > end:
            out[:] = 0
        while o + 4 <= end:
            d0, d1, d2, d3 = dr[o], dr[o + 1], dr[o + 2], dr[o + 3]
            w0, w1, w2, w3 = wt[o], wt[o + 1], wt[o + 2], wt[o + 3]
            if o == g * og:
                for i in range(cg):
                    out[i] = d0 * w0[i] + d1 * w1[i] + d2 * w2[i] + d3 * w3[i]
            else:
                for i in range(cg):
                    out[i] += d0 * w0[i] + d1 * w1[i] + d2 * w2[i] + d3 * w3[i]
            o += 4
        for q in range(o, end):
            d0, w0 = dr[q], wt[q]
            for i in range(cg):
                out[i] += d0 * w0[i]


@numba.njit(**_JIT)
def _run(src, dst, wt, b, relu, groups, sh, sw, adjoint):
    """The forward pass (src = x, dst = y) or, ``adjoint``, the input gradient (src = gy,
    dst = gx, whose unread pixels are zeroed)."""
    if not adjoint:
        n_img, oh_n, ow_n = dst.shape[0], dst.shape[1], dst.shape[2]
        for t in prange(n_img * oh_n):
            n, r = t // oh_n, t % oh_n
            for j in range(ow_n):
                _forward_pixel(src[n, r * sh, j * sw], wt, b, relu, groups, dst[n, r, j])
        return
    n_img, h, wd = dst.shape[0], dst.shape[1], dst.shape[2]
    oh_n, ow_n = src.shape[1], src.shape[2]
    for t in prange(n_img * h):
        n, r = t // h, t % h
        row = dst[n, r]
        if r % sh or r // sh >= oh_n:
            row[...] = 0
            continue
        for j in range(wd):
            if j % sw or j // sw >= ow_n:
                row[j] = 0
            else:
                _input_pixel(src[n, r // sh, j // sw], wt, groups, row[j])


@numba.njit(**_JIT)
def _weight(x, dy, parts, groups, sh, sw):
    """``parts[thread]`` (``gw^T``, ``(O, Cg)``) += the weight gradient of the output rows that
    thread ran: a static split; each row of ``gw^T`` gains four pixels per pass."""
    n_img, oh_n, ow_n, o_n = dy.shape
    cg = parts.shape[2]
    og = o_n // groups
    tasks, threads = n_img * oh_n, parts.shape[0]
    for tid in prange(threads):
        acc = parts[tid]
        for t in range(tid * tasks // threads, (tid + 1) * tasks // threads):
            n, r = t // oh_n, t % oh_n
            xr, dr = x[n, r * sh], dy[n, r]
            j = 0
            while j < ow_n:
                if j + 4 <= ow_n:
                    x0, x1 = xr[j * sw], xr[(j + 1) * sw]
                    x2, x3 = xr[(j + 2) * sw], xr[(j + 3) * sw]
                    for o in range(o_n):
                        c0, a = o // og * cg, acc[o]
                        d0, d1, d2, d3 = dr[j, o], dr[j + 1, o], dr[j + 2, o], dr[j + 3, o]
                        v0, v1, v2, v3 = x0[c0:], x1[c0:], x2[c0:], x3[c0:]
                        for i in range(cg):
                            a[i] += d0 * v0[i] + d1 * v1[i] + d2 * v2[i] + d3 * v3[i]
                    j += 4
                else:
                    x0 = xr[j * sw]
                    for o in range(o_n):
                        c0, a, d0 = o // og * cg, acc[o], dr[j, o]
                        for i in range(cg):
                            a[i] += d0 * x0[c0 + i]
                    j += 1
