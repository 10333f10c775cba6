"""Direct convolution, NHWC activations x HWIO weights, Numba backend (``kernels/README.md``).

The same algorithm as ``kernels/cython/conv_direct.pyx``: each public function checks its
arguments in plain Python, lists the filter taps that reach a real cell along each axis
(``_taps``; padded cells read as zeros and are skipped), then calls a kernel that Numba compiles
on first use (one specialisation per dtype) and caches on disk. Every kernel runs one static
range of rows per thread, and every innermost loop runs over contiguous channels, four taps per
pass over the output: a scalar times a vector (``_acc_b``: many channels per group on the
output side) or a vector times a vector (``_acc_v``).

Groups with few output channels (``Og < WIDE``) run "expanded": a row of x is copied once per
input channel ``ci`` into ``xe[ci, iw, o] = x[iw, (o // Og)*Cg + ci]`` (a small per-thread cache
of rows), so that the loops run over all O output channels at once. The input gradient of few
input channels per group (``Cg < WIDE``) sums ``gy * w`` per output channel over the taps, then
adds up each group's channels once per pixel. The weight gradient runs bands of output rows:
not expanded, a GEMM of every tap x output channels over the band's pixels whose taps are all
real, the other pixels row by row.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _adjoint, _checks
from fastconv.kernels._taps import taps as _taps
from fastconv.kernels.numba.epilogue import bias_act_row

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: its nnan/ninf flags would break NaN propagation.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")
_SERIAL = dict(cache=True, nogil=True, error_model="numpy")
WIDE = 16   # channels per group below which a side runs vector x vector


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups, b=None, relu=False):
    """``y[n, oh, ow, o] = sum x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, c] * w[i, j, c', o]``
    (+ ``b[o]``, then ReLU when ``relu``: each row while it is in cache).

    x ``(N, H, W, C)``, w ``(KH, KW, C // groups, O)``, y ``(N, OH, OW, O)`` (overwritten), b
    ``(O,)`` or None.
    """
    op = "conv_direct.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    sh, sw, pt, pl, dil_h, dil_w, groups = _checks.conv(op, x, w, y, "x", "y", sh, sw, pt, pl,
                                                        dil_h, dil_w, groups)
    _checks.bias(op, b, y)
    if y.size:
        _forward(x, w, y, *_taps(y.shape[1], w.shape[0], sh, pt, dil_h, x.shape[1], False),
                 *_taps(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False), groups,
                 _slots(w.shape[0], dil_h, x.shape[1]), numba.get_num_threads(),
                 np.empty(0, y.dtype) if b is None else b, b is not None, bool(relu))


def backward(gy, x, w, gx, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=None):
    """Gradients of :func:`forward`: :func:`backward_input` into ``gx`` (None: not computed), then
    :func:`backward_weight` into ``gw`` and ``gb`` (None: not computed)."""
    _checks.gradients("conv_direct.backward", gy, x, w, gx, gw, gb)
    if gx is not None:
        backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups)
    backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=gb)


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups):
    """Gradient of :func:`forward` with respect to x, into ``gx`` ``(N, H, W, C)`` (overwritten)."""
    op = "conv_direct.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    sh, sw, pt, pl, dil_h, dil_w, groups = _checks.conv(op, gx, w, gy, "gx", "gy", sh, sw, pt,
                                                        pl, dil_h, dil_w, groups)
    if not gx.size:
        return
    if not gy.size:  # no output channels: nothing reaches x (the group sums would read acc[:, 0])
        gx[...] = 0
        return
    rows = _taps(gx.shape[1], w.shape[0], sh, pt, dil_h, gy.shape[1], True)
    cols = _taps(gx.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True)
    if w.shape[2] >= WIDE:
        # w as (KH, KW, O, Cg): the innermost loop then runs over contiguous input channels
        _backward_input_bcast(gy, np.ascontiguousarray(w.transpose(0, 1, 3, 2)), gx, *rows,
                              *cols, groups, numba.get_num_threads())
        return
    adj = _adjoint.as_forward(w, gx.shape[1:3], gy.shape[1:3], sh, sw, pt, pl, dil_h, dil_w,
                              groups)
    if adj:
        forward(gy, adj[0], gx, 1, 1, adj[1], adj[2], dil_h, dil_w, groups)
    else:
        _backward_input_dot(gy, w, gx, *rows, *cols, groups, numba.get_num_threads())


def backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=None):
    """Gradient of :func:`forward` with respect to w, into ``gw`` ``(KH, KW, C // groups, O)``;
    and the bias's, ``gy`` summed over its pixels, into ``gb`` ``(O,)`` unless None, from the
    same pass over gy."""
    op = "conv_direct.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    sh, sw, pt, pl, dil_h, dil_w, groups = _checks.conv(op, x, gw, gy, "x", "gy", sh, sw, pt,
                                                        pl, dil_h, dil_w, groups)
    # a static split of the output rows, one private accumulator per thread, summed at the end
    # in a fixed order: the same bits on every call
    parts = np.zeros((numba.get_num_threads(),) + gw.shape, gw.dtype)
    bias = _checks.bias_grad(op, gb, gy)
    bparts = np.zeros((parts.shape[0], gy.shape[3] if bias else 0), gw.dtype)
    if gy.size and x.size:
        _backward_weight(gy, x, parts, *_taps(gy.shape[1], gw.shape[0], sh, pt, dil_h,
                                              x.shape[1], False),
                         sh, sw, pt, pl, dil_h, dil_w, groups,
                         _slots(gw.shape[0], dil_h, x.shape[1]),
                         _band(gy.shape[1], gy.shape[2], gy.shape[3], gy.itemsize),
                         bparts, bias)
    np.sum(parts, axis=0, out=gw)
    if bias:
        np.sum(bparts, axis=0, out=gb)


def _band(oh, ow, o, itemsize):
    """Output rows per band of the weight gradient: about 16 KiB of gy, which the GEMM's taps
    re-read from cache."""
    return max(1, min(oh, 16384 // max(1, ow * o * itemsize)))


def _slots(kh, dil_h, h):
    """Rows in the expanded-row cache: more than the span of one output row's row taps, but no
    more than the ``h`` rows of an image (each row is used as soon as it is fetched: fewer
    slots only cost reuse, and a huge dilation must not allocate rows that do not exist)."""
    return max(1, min((kh - 1) * dil_h + 1, h))


# ------------------------------------------------------------------------------------ kernels
# The innermost loops run over 1-D views from index 0, which LLVM vectorises.

@numba.njit(**_SERIAL)
def _acc_b(out, n, a, a0, a_r, a_t, b, b0, b_r, b_t, mi, m):
    """``out[:n] += sum over r < mi, t < m of a[a0 + r*a_r + t*a_t] * b[b0 + r*b_r + t*b_t:][:n]``."""
    u, taps = 0, mi * m
    while u + 4 <= taps:
        r0, t0 = divmod(u, m)
        r1, t1 = divmod(u + 1, m)
        r2, t2 = divmod(u + 2, m)
        r3, t3 = divmod(u + 3, m)
        x0, x1 = a[a0 + r0 * a_r + t0 * a_t], a[a0 + r1 * a_r + t1 * a_t]
        x2, x3 = a[a0 + r2 * a_r + t2 * a_t], a[a0 + r3 * a_r + t3 * a_t]
        s0 = b0 + r0 * b_r + t0 * b_t
        s1 = b0 + r1 * b_r + t1 * b_t
        s2 = b0 + r2 * b_r + t2 * b_t
        s3 = b0 + r3 * b_r + t3 * b_t
        v0, v1, v2, v3 = b[s0:s0 + n], b[s1:s1 + n], b[s2:s2 + n], b[s3:s3 + n]
        for k in range(n):
            out[k] += x0 * v0[k] + x1 * v1[k] + x2 * v2[k] + x3 * v3[k]
        u += 4
    while u < taps:
        r0, t0 = divmod(u, m)
        x0 = a[a0 + r0 * a_r + t0 * a_t]
        s0 = b0 + r0 * b_r + t0 * b_t
        v0 = b[s0:s0 + n]
        for k in range(n):
            out[k] += x0 * v0[k]
        u += 1


@numba.njit(**_SERIAL)
def _acc_v(out, n, a, a0, a_r, a_t, b, b0, b_r, b_t, mi, m):
    """:func:`_acc_b` with ``a[a0 + r*a_r + t*a_t:][:n]``: a vector, not a scalar."""
    u, taps = 0, mi * m
    while u + 4 <= taps:
        r0, t0 = divmod(u, m)
        r1, t1 = divmod(u + 1, m)
        r2, t2 = divmod(u + 2, m)
        r3, t3 = divmod(u + 3, m)
        p0, p1 = a0 + r0 * a_r + t0 * a_t, a0 + r1 * a_r + t1 * a_t
        p2, p3 = a0 + r2 * a_r + t2 * a_t, a0 + r3 * a_r + t3 * a_t
        x0, x1, x2, x3 = a[p0:p0 + n], a[p1:p1 + n], a[p2:p2 + n], a[p3:p3 + n]
        s0 = b0 + r0 * b_r + t0 * b_t
        s1 = b0 + r1 * b_r + t1 * b_t
        s2 = b0 + r2 * b_r + t2 * b_t
        s3 = b0 + r3 * b_r + t3 * b_t
        v0, v1, v2, v3 = b[s0:s0 + n], b[s1:s1 + n], b[s2:s2 + n], b[s3:s3 + n]
        for k in range(n):
            out[k] += x0[k] * v0[k] + x1[k] * v1[k] + x2[k] * v2[k] + x3[k] * v3[k]
        u += 4
    while u < taps:
        r0, t0 = divmod(u, m)
        p0 = a0 + r0 * a_r + t0 * a_t
        x0 = a[p0:p0 + n]
        s0 = b0 + r0 * b_r + t0 * b_t
        v0 = b[s0:s0 + n]
        for k in range(n):
            out[k] += x0[k] * v0[k]
        u += 1


@numba.njit(**_SERIAL)
def _step(tab, q, cnt, col):
    """The even spacing of column ``col`` (cell 0, tap 1) over the ``cnt`` taps of ``tab[q]``."""
    return (tab[q, cnt - 1, col] - tab[q, 0, col]) // (cnt - 1) if cnt > 1 else 0


@numba.njit(**_SERIAL)
def _expanded_row(x, n, ih, xe, tags, og, groups):
    """Row ``x[n, ih]`` expanded, ``[Cg, W, O]``, from a cache of rows keyed by ``n*H + ih``."""
    h, wd, c = x.shape[1], x.shape[2], x.shape[3]
    cg = c // groups
    key = n * h + ih
    slot = key % tags.size
    e = xe[slot]
    if tags[slot] != key:
        xr = x[n, ih]
        for ci in range(cg):
            for iw in range(wd):
                er = e[ci, iw]
                for g in range(groups):
                    v = xr[iw, g * cg + ci]
                    for q in range(og):
                        er[g * og + q] = v
        tags[slot] = key
    return e


@numba.njit(**_JIT)
def _forward(x, w, y, rt, rn, ct, cn, groups, slots, threads, b, bias, relu):
    n_img, h, wd, c = x.shape
    kh, kw, cg, o = w.shape
    oh_n, ow_n = y.shape[1], y.shape[2]
    og = o // groups
    expanded = og < WIDE
    xf, wf = x.reshape(-1), w.reshape(-1)
    total = n_img * oh_n
    # one static range of output rows per thread; each (n, r) owns the row y[n, r]
    for tid in prange(threads):
        xe = np.empty((slots if expanded else 0, cg, wd, o), y.dtype)
        tags = np.full(slots, -1, np.intp)
        for t in range(tid * total // threads, (tid + 1) * total // threads):
            n = t // oh_n
            r = t - n * oh_n
            yr = y[n, r]
            for q in range(ow_n):
                yq = yr[q]
                for k in range(o):
                    yq[k] = 0
            mi = rn[r]
            ar = _step(rt, r, mi, 0)
            br = _step(rt, r, mi, 1) * kw * cg * o
            for a in range(mi if expanded else 0):
                e = _expanded_row(x, n, rt[r, a, 0], xe, tags, og, groups).reshape(-1)
                i = rt[r, a, 1]
                for q in range(ow_n):
                    m = cn[q]
                    if m:
                        # taps (ci, j): e[ci, cell] * w[i, j, ci]
                        _acc_v(yr[q], o, e, ct[q, 0, 0] * o, wd * o, _step(ct, q, m, 0) * o,
                               wf, (i * kw + ct[q, 0, 1]) * cg * o, o,
                               _step(ct, q, m, 1) * cg * o, cg, m)
            if mi and not expanded:
                x0 = (n * h + rt[r, 0, 0]) * wd * c
                w0 = rt[r, 0, 1] * kw * cg * o
                for q in range(ow_n):
                    m = cn[q]
                    if m == 0:
                        continue
                    cs = _step(ct, q, m, 0)
                    if groups == 1 and cs == 1:
                        # the taps (j, c) of a row are consecutive in both x and w
                        _acc_b(yr[q], o, xf, x0 + ct[q, 0, 0] * c, ar * wd * c, 1, wf,
                               w0 + ct[q, 0, 1] * c * o, br, o, mi, m * c)
                        continue
                    for bb in range(m):
                        for g in range(groups):
                            _acc_b(yr[q, g * og:(g + 1) * og], og, xf,
                                   x0 + ct[q, bb, 0] * c + g * cg, ar * wd * c, 1, wf,
                                   w0 + ct[q, bb, 1] * cg * o + g * og, br, o, mi, cg)
            if bias or relu:   # while the row is in cache
                for q in range(ow_n):
                    bias_act_row(yr[q], b, bias, relu)


@numba.njit(**_JIT)
def _backward_input_dot(gy, w, gx, rt, rn, ct, cn, groups, threads):
    """Few input channels per group: ``acc[c, o]`` sums ``gy[o] * w[tap, c, o]`` over the taps,
    then each group adds up its output channels."""
    n_img, h, wd, c = gx.shape
    kh, kw, cg, o = w.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    og = o // groups
    gyf, wf = gy.reshape(-1), w.reshape(-1)
    total = n_img * h
    # gather: each (n, r) owns the input row gx[n, r]
    for tid in prange(threads):
        acc = np.empty((cg, o), gx.dtype)
        for t in range(tid * total // threads, (tid + 1) * total // threads):
            n = t // h
            r = t - n * h
            mi = rn[r]
            ar = _step(rt, r, mi, 0) * ow_n * o
            br = _step(rt, r, mi, 1) * kw * cg * o
            for q in range(wd):
                for ci in range(cg):
                    for k in range(o):
                        acc[ci, k] = 0
                m = cn[q]
                if m and mi:
                    a0 = ((n * oh_n + rt[r, 0, 0]) * ow_n + ct[q, 0, 0]) * o
                    b0 = (rt[r, 0, 1] * kw + ct[q, 0, 1]) * cg * o
                    for ci in range(cg):
                        _acc_v(acc[ci], o, gyf, a0, ar, _step(ct, q, m, 0) * o, wf, b0 + ci * o,
                               br, _step(ct, q, m, 1) * cg * o, mi, m)
                gq = gx[n, r, q]
                for g in range(groups):
                    for ci in range(cg):
                        s = acc[ci, g * og]
                        for k in range(g * og + 1, (g + 1) * og):
                            s += acc[ci, k]
                        gq[g * cg + ci] = s


@numba.njit(**_JIT)
def _backward_input_bcast(gy, wt, gx, rt, rn, ct, cn, groups, threads):
    n_img, h, wd, c = gx.shape
    kh, kw, o, cg = wt.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    og = o // groups
    gyf, wf = gy.reshape(-1), wt.reshape(-1)
    total = n_img * h
    # gather: each (n, r) owns the input row gx[n, r]
    for tid in prange(threads):
        for t in range(tid * total // threads, (tid + 1) * total // threads):
            n = t // h
            r = t - n * h
            mi = rn[r]
            ar = _step(rt, r, mi, 0) * ow_n * o
            br = _step(rt, r, mi, 1) * kw * o * cg
            for q in range(wd):
                gq = gx[n, r, q]
                for k in range(c):
                    gq[k] = 0
                if mi == 0:
                    continue
                for b in range(cn[q]):
                    a0 = ((n * oh_n + rt[r, 0, 0]) * ow_n + ct[q, b, 0]) * o
                    b0 = (rt[r, 0, 1] * kw + ct[q, b, 1]) * o * cg
                    for g in range(groups):
                        _acc_b(gq[g * cg:(g + 1) * cg], cg, gyf, a0 + g * og, ar, 1, wf,
                               b0 + g * og * cg, br, cg, mi, og)


@numba.njit(**_JIT)
def _backward_weight(gy, x, parts, rt, rn, sh, sw, pt, pl, dil_h, dil_w, groups, slots, band,
                     bparts, bias):
    """``parts[thread]`` += the weight gradient of the bands of output rows that thread ran, and
    ``bparts[thread]`` += their pixels of gy when ``bias``.
    Not expanded, the rows and columns whose taps are all real run one GEMM per band and group
    (every tap x the group's channels, summed over the band's pixels); the rest runs per row."""
    n_img, h, wd, c = x.shape
    threads, kh, kw, cg, o = parts.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    og = o // groups
    expanded = og < WIDE
    xf, gyf = x.reshape(-1), gy.reshape(-1)
    # [lo_all, hi_all): the output columns whose every column tap reads a real input column
    lo_all, hi_all = 0, ow_n
    for j in range(kw):
        lo_all = max(lo_all, -((j * dil_w - pl) // sw))
        hi_all = min(hi_all, -((j * dil_w - pl - wd) // sw))
    gemm = not expanded and lo_all < hi_all
    # the taps (i, j, c) of the GEMM: offsets in x from the band's first tap, rows in gw
    off = np.empty(kh * kw * cg, np.intp)
    for i in range(kh):
        for j in range(kw):
            for ci in range(cg):
                off[(i * kw + j) * cg + ci] = (i * dil_h * wd + j * dil_w) * c + ci
    nb = (oh_n + band - 1) // band
    total = n_img * nb
    for tid in prange(threads):
        xe = np.empty((slots if expanded else 0, cg, wd, o), x.dtype)
        tags = np.full(slots, -1, np.intp)
        pw = parts[tid]
        pf = pw.reshape(-1)
        for u in range(tid * total // threads, (tid + 1) * total // threads):
            n = u // nb
            r0 = (u - n * nb) * band
            r1 = min(oh_n, r0 + band)
            # the band's rows whose row taps are all real: [s0, s1)
            s0 = r0
            while s0 < r1 and rn[s0] < kh:
                s0 += 1
            s1 = s0
            while s1 < r1 and rn[s1] == kh:
                s1 += 1
            if gemm and s0 < s1:
                a0 = ((n * h + s0 * sh - pt) * wd + lo_all * sw - pl) * c
                b0 = ((n * oh_n + s0) * ow_n + lo_all) * o
                # row by row: a row of gy stays in L1 over the taps (LLVM keeps no register tile)
                for rr in range(s1 - s0):
                    for g in range(groups):
                        for t in range(kh * kw * cg):
                            _acc_b(pf[t * o + g * og:t * o + (g + 1) * og], og, xf,
                                   a0 + rr * sh * wd * c + off[t] + g * cg, 0, sw * c, gyf,
                                   b0 + rr * ow_n * o + g * og, 0, o, 1, hi_all - lo_all)
            for r in range(r0, r1):
                full = gemm and s0 <= r < s1
                for a in range(rn[r]):
                    ih = rt[r, a, 0]
                    i = rt[r, a, 1]
                    if expanded:
                        e = _expanded_row(x, n, ih, xe, tags, og, groups)
                    for j in range(kw):
                        # the output columns [lo, hi) whose tap j reads a real input column,
                        # less [lo_all, hi_all) where the GEMM ran
                        lo = max(0, -((j * dil_w - pl) // sw))
                        hi = min(ow_n, -((j * dil_w - pl - wd) // sw))
                        for part in range(2 if full else 1):
                            plo, phi = lo, hi
                            if full:
                                plo, phi = (lo, lo_all) if part == 0 else (hi_all, hi)
                            if plo >= phi:
                                continue
                            g0 = ((n * oh_n + r) * ow_n + plo) * o
                            if expanded:
                                for ci in range(cg):
                                    # taps = output columns: e[ci, iw] * gy[ow]
                                    _acc_v(pw[i, j, ci], o, e[ci].reshape(-1),
                                           (plo * sw - pl + j * dil_w) * o, 0, sw * o, gyf, g0,
                                           0, o, 1, phi - plo)
                                continue
                            x0 = ((n * h + ih) * wd + plo * sw - pl + j * dil_w) * c
                            for g in range(groups):
                                for ci in range(cg):
                                    _acc_b(pw[i, j, ci, g * og:(g + 1) * og], og, xf,
                                           x0 + g * cg + ci, 0, sw * c, gyf, g0 + g * og, 0, o,
                                           1, phi - plo)
            if bias:  # the band's gy, in cache
                bp = bparts[tid]
                for q in range(((n * oh_n + r0) * ow_n) * o, ((n * oh_n + r1) * ow_n) * o, o):
                    for k in range(o):
                        bp[k] += gyf[q + k]
