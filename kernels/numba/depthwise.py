"""Depthwise convolution (groups == channels), NHWC, Numba backend (``kernels/README.md``).

Weights are ``w[KH, KW, 1, C*M]``: output channel ``c*M + m`` reads input channel ``c``
(depth multiplier ``M``). ``M == 1`` follows the Cython kernels' tiling (a task is one output
row; the columns go in runs that share their taps, ``_taps.runs``; taps in tiles of up to
3x3, a full 3x3 tile summed per pixel in one expression that starts from the bias, other tiles
added into the output; the channels innermost), one pixel at a time where Cython sums strips
of 8 pixels in registers: Numba cannot keep such tiles in registers, and blocks of channels
measured 2-10x slower here (the per-pixel views cost more than the arithmetic).
:func:`backward` makes both gradients in one pass (task ``(n, r)``: the row ``gx[n, r]``, then
the weight gradient of the row ``gy[n, r]``); Cython runs them as two passes, which gained
there (sliding strips) and measured the same here. Numba has no non-temporal stores, so no
streamed rows. The ``M > 1`` kernels first regroup the weights (and gy) by multiplier,
``[..., M, C]``, so that their innermost loops are contiguous too. Each kernel compiles on first
use.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks
from fastconv.kernels._taps import runs as _runs, taps as _taps

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: it measured no clear gain, and its nnan/ninf flags would
# break NaN propagation.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")
_ROW = dict(cache=True, nogil=True, error_model="numpy")
_CB_MIN = 64  # M > 1 weight gradient: at least this many output channels per task


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, b=None):
    """``y[n, oh, ow, c*M + m] = sum_ij x[n, ih, iw, c] * w[i, j, 0, c*M + m]`` (+ ``b[c*M + m]``),
    y overwritten; b ``(C*M,)`` or None."""
    op = "depthwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    m, geo = _checks.depthwise(op, x, w, y, "x", "y", sh, sw, pt, pl, dil_h, dil_w)
    _checks.bias(op, b, y)
    bias = np.zeros(w.shape[3], w.dtype) if b is None else b
    if m == 1 and y.size:
        sh, sw, pt, pl, dil_h, dil_w = geo
        _gather_1(x, w, y, *_taps(y.shape[1], w.shape[0], sh, pt, dil_h, x.shape[1], False),
                  _runs(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False), bias)
    elif m > 1:
        _forward_m(x, w, y, bias, m, *geo)


def backward(gy, x, w, gx, gw, sh, sw, pt, pl, dil_h, dil_w, gb=None):
    """Gradients of :func:`forward`: ``gx`` with respect to x (None: not computed) and ``gw``
    with respect to w, both overwritten, and the bias's, gy summed over its pixels, into ``gb``
    unless None. ``M == 1``: one pass, task ``(n, r)`` computes the row ``gx[n, r]``, then the
    weight and bias gradients of the row ``gy[n, r]``."""
    op = "depthwise.backward"
    bias = _checks.gradients(op, gy, x, w, gx, gw, gb)
    m, geo = _checks.depthwise(op, x, w, gy, "x", "gy", sh, sw, pt, pl, dil_h, dil_w)
    if m == 1:
        # a static split of the rows, one private accumulator per thread, summed at the end in a
        # fixed order: the same bits on every call
        sh, sw, pt, pl, dil_h, dil_w = geo
        parts = np.zeros((numba.get_num_threads(),) + gw.shape, gw.dtype)
        bparts = np.zeros((parts.shape[0], gy.shape[3] if bias else 0), gw.dtype)
        if x.size:
            rows = _taps(gy.shape[1], gw.shape[0], sh, pt, dil_h, x.shape[1], False)
            runs = _runs(gy.shape[2], gw.shape[1], sw, pl, dil_w, x.shape[2], False)
            if gx is None:   # gy's tables stand in for gx's, unread
                gx, rows_x, runs_x = np.empty((0, 0, 0, 0), x.dtype), rows, runs
            else:
                rows_x = _taps(x.shape[1], w.shape[0], sh, pt, dil_h, gy.shape[1], True)
                runs_x = _runs(x.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True)
            _backward_1(gy, x, w, gx, parts, *rows, runs, *rows_x, runs_x, bparts, bias)
        np.sum(parts, axis=0, out=gw)
        if bias:
            np.sum(bparts, axis=0, out=gb)
        return
    if bias:
        gb[...] = gy.sum(axis=(0, 1, 2))
    if gx is not None:
        _backward_input_m(gy, w, gx, m, *geo)
    # input channels per task: at least _CB_MIN output channels (a long inner loop), and about
    # one task per thread
    c = x.shape[3]
    cb = max(-(-_CB_MIN // m), -(-c // numba.get_num_threads()))
    _backward_weight_m(gy, x, gw, m, cb, *geo)


# ------------------------------------------------------------------------------------ kernels
# Innermost loops index 1-D row views from 0, which LLVM vectorises (see conv_direct.py).

@numba.njit(**_JIT)
def _gather_1(src, w, out, rt, rn, runs, b):
    """``out[n, r]`` = ``b`` + sum over the row taps ``rt[r, :rn[r]]`` and the column runs of
    ``src * w`` (M == 1): the forward pass."""
    n_img, oh_n = out.shape[0], out.shape[1]
    # each (n, r) owns the output row out[n, r]; equal contiguous blocks of rows per thread
    for t in prange(n_img * oh_n):
        _gather_row(src, w, out, t // oh_n, t % oh_n, rt, rn, runs, b)


@numba.njit(**_ROW)
def _gather_row(src, w, out, n, r, rt, rn, runs, b):
    """The row ``out[n, r]`` of :func:`_gather_1`; with ``src`` = gy and ``b`` = 0, the row
    ``gx[n, r]`` of the input gradient."""
    c = out.shape[3]
    nr = rn[r]
    o2 = out[n, r]
    for u in range(runs.shape[0]):
        q0, qs, nq, cell0, cs, tap0, js, ts, nt = runs[u]
        for a0 in range(0, max(nr, 1), 3):
            for t0 in range(0, max(nt, 1), 3):
                ra, ca = max(min(3, nr - a0), 0), max(min(3, nt - t0), 0)
                first = a0 == 0 and t0 == 0
                j0, d0 = tap0 + t0 * js, cell0 + t0 * ts
                if ra == 3 and ca == 3:
                    s0, s1, s2 = (src[n, rt[r, a0, 0]], src[n, rt[r, a0 + 1, 0]],
                                  src[n, rt[r, a0 + 2, 0]])
                    v0, v1, v2 = w[rt[r, a0, 1]], w[rt[r, a0 + 1, 1]], w[rt[r, a0 + 2, 1]]
                    j1, j2 = j0 + js, j0 + 2 * js
                    w00, w01, w02 = v0[j0, 0], v0[j1, 0], v0[j2, 0]
                    w10, w11, w12 = v1[j0, 0], v1[j1, 0], v1[j2, 0]
                    w20, w21, w22 = v2[j0, 0], v2[j1, 0], v2[j2, 0]
                    for i in range(nq):
                        d = d0 + i * cs
                        e, f = d + ts, d + 2 * ts
                        x00, x01, x02 = s0[d], s0[e], s0[f]
                        x10, x11, x12 = s1[d], s1[e], s1[f]
                        x20, x21, x22 = s2[d], s2[e], s2[f]
                        o = o2[q0 + i * qs]
                        st = b if first else o
                        for k in range(c):
                            o[k] = (st[k]
                                    + (x00[k] * w00[k] + x01[k] * w01[k] + x02[k] * w02[k])
                                    + (x10[k] * w10[k] + x11[k] * w11[k] + x12[k] * w12[k])
                                    + (x20[k] * w20[k] + x21[k] * w21[k] + x22[k] * w22[k]))
                    continue
                for i in range(nq):
                    o = o2[q0 + i * qs]
                    if first:
                        for k in range(c):
                            o[k] = b[k]
                    for a in range(a0, a0 + ra):
                        srow, wrow = src[n, rt[r, a, 0]], w[rt[r, a, 1]]
                        for tt in range(ca):
                            xs = srow[d0 + i * cs + tt * ts]
                            ws = wrow[j0 + tt * js, 0]
                            for k in range(c):
                                o[k] += xs[k] * ws[k]


@numba.njit(**_JIT)
def _backward_1(gy, x, w, gx, parts, rt, rn, runs, rtx, rnx, runs_x, bparts, bias):
    """Row ``r`` of image ``n`` is one task: ``gx[n, r]`` (when r < H and gx is not empty), then
    ``parts[thread]`` += the weight gradient of ``gy[n, r]`` (when r < OH) (M == 1), and
    ``bparts[thread]`` += its pixels when ``bias``."""
    n_img, h = x.shape[0], x.shape[1]
    oh_n = gy.shape[1]
    rows = max(h, oh_n)
    n_tasks = n_img * rows
    n_thr = parts.shape[0]
    zero = np.zeros(x.shape[3], x.dtype)
    # a static split: thread p runs the contiguous block of tasks [p*n/T, (p+1)*n/T)
    for p in prange(n_thr):
        for t in range(p * n_tasks // n_thr, (p + 1) * n_tasks // n_thr):
            n, r = t // rows, t % rows
            if gx.size and r < h:
                _gather_row(gy, w, gx, n, r, rtx, rnx, runs_x, zero)
            if r < oh_n:
                _weight_row(gy, x, parts[p], n, r, rt, rn, runs)
                if bias:
                    bp, d2 = bparts[p], gy[n, r]
                    for q in range(d2.shape[0]):
                        for c in range(d2.shape[1]):
                            bp[c] += d2[q, c]


@numba.njit(**_ROW)
def _weight_row(gy, x, g, n, r, rt, rn, runs):
    """``g`` += the weight gradient of the row ``gy[n, r]`` (M == 1)."""
    c = gy.shape[3]
    d2 = gy[n, r]
    for a in range(rn[r]):
        srow, grow = x[n, rt[r, a, 0]], g[rt[r, a, 1]]
        for u in range(runs.shape[0]):
            q0, qs, nq, cell0, cs, tap0, js, ts, nt = runs[u]
            for tt in range(nt):
                acc = grow[tap0 + tt * js, 0]
                for i in range(nq):
                    xs = srow[cell0 + i * cs + tt * ts]
                    ds = d2[q0 + i * qs]
                    for k in range(c):
                        acc[k] += xs[k] * ds[k]


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
def _forward_m(x, w, y, b, m, sh, sw, pt, pl, dil_h, dil_w):
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
                    acc[r, ci] = b[ci * m + r]
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
