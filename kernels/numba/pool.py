"""Max and average pooling, NHWC, Numba backend (``kernels/README.md``).

Padded cells are absent: max ignores them, average divides by the number of real cells
(Keras' rule); the checks reject geometries with a window that holds no real cell. The max
window's winner is its first NaN if it holds one, else its first maximum, scanning rows then
columns (NumPy's ``argmax``); the backward pass sends the gradient to the winner only.
The ``_indices`` pair keeps the winner's offset ``i*kw + j`` in its window (uint8) and scatters
``gy`` by offset without reading x; the loops carry offsets in x's dtype (same-width selects
and compares), and an offset naming no real cell of its window matches nothing.
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

# backward tasks wanted: whole images per task if the batch gives this many, else bands of
# output rows (a band re-scans the overlapping windows that straddle its first row)
_TASKS = 128


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


def max_forward_indices(x, y, idx, kh, kw, sh, sw, pt, pl):
    """:func:`max_forward`, and ``idx[n, oh, ow, c]`` (uint8, overwritten) = the winner's
    offset ``i*kw + j`` in its window."""
    op = "pool.max_forward_indices"
    _checks.arrays(op, {"x": (x, 4)}, {"y": (y, 4)})
    geo = _checks.pool(op, x.shape, y.shape, "x", "y", kh, kw, sh, sw, pt, pl)
    _checks.window_offsets(op, idx, y.shape, geo[0] * geo[1], {"x": x, "y": y}, output=True)
    _max_forward_indices(x, y, idx, *geo)


def max_backward_indices(idx, gy, gx, kh, kw, sh, sw, pt, pl):
    """``gx`` (overwritten) = each ``gy`` sent to the cell its offset in ``idx`` names, summed;
    x is not read."""
    op = "pool.max_backward_indices"
    _checks.arrays(op, {"gy": (gy, 4)}, {"gx": (gx, 4)})
    geo = _checks.pool(op, gx.shape, gy.shape, "gx", "gy", kh, kw, sh, sw, pt, pl)
    _checks.window_offsets(op, idx, gy.shape, geo[0] * geo[1], {"gx": gx}, output=False)
    _max_backward_indices(idx, gy, gx, *geo)


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
@numba.njit(**_JIT)
def _max_forward(x, y, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = x.shape
    oh_n, ow_n = y.shape[1], y.shape[2]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        b0, b1 = np.empty(c, x.dtype), np.empty(c, x.dtype)
        h0, h1 = _span(oh, kh, sh, pt, h)
        for ow in range(ow_n):
            w0, w1 = _span(ow, kw, sw, pl, wd)
            best = _window_max(x[n], h0, h1, w0, w1, b0, b1)
            yr = y[n, oh, ow]
            for k in range(c):
                yr[k] = best[k]


@numba.njit(**_JIT)
def _max_forward_indices(x, y, idx, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = x.shape
    oh_n, ow_n = y.shape[1], y.shape[2]
    for t in prange(n_img * oh_n):
        n = t // oh_n
        oh = t - n * oh_n
        b0, b1 = np.empty(c, x.dtype), np.empty(c, x.dtype)
        k0, k1 = np.empty(c, x.dtype), np.empty(c, x.dtype)
        h0, h1 = _span(oh, kh, sh, pt, h)
        for ow in range(ow_n):
            w0, w1 = _span(ow, kw, sw, pl, wd)
            best, at = _window_argmax(x[n], h0, h1, w0, w1, (h0 - (oh * sh - pt)) * kw + w0 -
                                      (ow * sw - pl), kw, b0, b1, k0, k1)
            yr, ir = y[n, oh, ow], idx[n, oh, ow]
            for k in range(c):
                yr[k] = best[k]
                ir[k] = np.uint8(at[k])


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
            count = x.dtype.type((h1 - h0) * (w1 - w0))
            for k in range(c):
                yr[k] /= count


# The backward kernels run one task per (image, band of output rows). A task owns the input rows
# from its first window's first row to the next band's first window row and gathers the gradient
# of every window covering them: each cell of gx has one writer. Windows that do not overlap
# (stride >= window) write each cell once; otherwise the owned rows are zeroed just before their
# first window (while in cache) and accumulated.
@numba.njit(**_JIT)
def _max_backward(x, gy, gx, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = gx.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    disjoint = sh >= kh and sw >= kw
    zero = gx.dtype.type(0)
    band, bands = _bands(n_img, oh_n)
    for t in prange(n_img * bands):
        n, oh1, r0, r1, o0 = _task(t, band, bands, oh_n, kh, sh, pt, h)
        # per channel: the window's winner and the gradient not yet placed (it goes to the first
        # cell holding the winner), each in two buffers as in _window_max
        b0, b1 = np.empty(c, gx.dtype), np.empty(c, gx.dtype)
        p0, p1 = np.empty(c, gx.dtype), np.empty(c, gx.dtype)
        z = r0  # the owned rows before z are zeroed or written
        for o in range(o0, oh1):
            i0, i1 = _span(o, kh, sh, pt, h)
            z = _zero_rows(gx[n], z, i0 if disjoint else min(i1, r1), min(i1, r1))
            for ow in range(ow_n):
                j0, j1 = _span(ow, kw, sw, pl, wd)
                best = _window_max(x[n], i0, i1, j0, j1, b0, b1)
                pending, spare = p0, p1
                gyr = gy[n, o, ow]
                for k in range(c):
                    pending[k] = gyr[k]
                # rows above r0 only tell whether the winner came before the owned rows;
                # selects, not branches: which cell wins is unpredictable
                for i in range(i0, min(i1, r1)):
                    for j in range(j0, j1):
                        xr = x[n, i, j]
                        gxr = gx[n, i, j]
                        if disjoint:
                            for k in range(c):
                                hit = _hit(xr[k], best[k])
                                f = pending[k]
                                spare[k] = zero if hit else f
                                gxr[k] = f if hit else zero
                        elif i >= r0:
                            for k in range(c):
                                hit = _hit(xr[k], best[k])
                                f = pending[k]
                                spare[k] = zero if hit else f
                                gxr[k] += f if hit else zero
                        else:
                            for k in range(c):
                                f = pending[k]
                                spare[k] = zero if _hit(xr[k], best[k]) else f
                        pending, spare = spare, pending
                if disjoint:
                    _zero_cols(gx[n], i0, i1, j1, _own_end(ow, ow_n, sw, pl, wd))
        _zero_rows(gx[n], z, r1, r1)


@numba.njit(**_JIT)
def _max_backward_indices(idx, gy, gx, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = gx.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    disjoint = sh >= kh and sw >= kw
    zero = gx.dtype.type(0)
    band, bands = _bands(n_img, oh_n)
    for t in prange(n_img * bands):
        n, oh1, r0, r1, o0 = _task(t, band, bands, oh_n, kh, sh, pt, h)
        at = np.empty(c, gx.dtype)  # the window's offsets, in gx's dtype
        z = r0  # the owned rows before z are zeroed or written
        for o in range(o0, oh1):
            i0, i1 = _span(o, kh, sh, pt, h)
            z = _zero_rows(gx[n], z, i0 if disjoint else min(i1, r1), min(i1, r1))
            for ow in range(ow_n):
                j0, j1 = _span(ow, kw, sw, pl, wd)
                gyr, ir = gy[n, o, ow], idx[n, o, ow]
                for k in range(c):
                    at[k] = ir[k]
                for i in range(max(i0, r0), min(i1, r1)):
                    for j in range(j0, j1):
                        cell = gx.dtype.type((i - (o * sh - pt)) * kw + j - (ow * sw - pl))
                        gxr = gx[n, i, j]
                        if disjoint:
                            for k in range(c):
                                gxr[k] = gyr[k] if at[k] == cell else zero
                        else:
                            for k in range(c):
                                gxr[k] += gyr[k] if at[k] == cell else zero
                if disjoint:
                    _zero_cols(gx[n], i0, i1, j1, _own_end(ow, ow_n, sw, pl, wd))
        _zero_rows(gx[n], z, r1, r1)


@numba.njit(**_JIT)
def _avg_backward(gy, gx, kh, kw, sh, sw, pt, pl):
    n_img, h, wd, c = gx.shape
    oh_n, ow_n = gy.shape[1], gy.shape[2]
    disjoint = sh >= kh and sw >= kw
    band, bands = _bands(n_img, oh_n)
    for t in prange(n_img * bands):
        n, oh1, r0, r1, o0 = _task(t, band, bands, oh_n, kh, sh, pt, h)
        share = np.empty(c, gx.dtype)  # the window's gradient per cell
        z = r0  # the owned rows before z are zeroed or written
        for o in range(o0, oh1):
            i0, i1 = _span(o, kh, sh, pt, h)
            z = _zero_rows(gx[n], z, i0 if disjoint else min(i1, r1), min(i1, r1))
            for ow in range(ow_n):
                j0, j1 = _span(ow, kw, sw, pl, wd)
                cells = gx.dtype.type((i1 - i0) * (j1 - j0))
                gyr = gy[n, o, ow]
                for k in range(c):
                    share[k] = gyr[k] / cells
                for i in range(max(i0, r0), min(i1, r1)):
                    for j in range(j0, j1):
                        gxr = gx[n, i, j]
                        if disjoint:
                            for k in range(c):
                                gxr[k] = share[k]
                        else:
                            for k in range(c):
                                gxr[k] += share[k]
                if disjoint:
                    _zero_cols(gx[n], i0, i1, j1, _own_end(ow, ow_n, sw, pl, wd))
        _zero_rows(gx[n], z, r1, r1)


# ------------------------------------------------------------------------------------ helpers
@numba.njit(inline="always")
def _span(o, k, s, p, size):
    """The real cells ``[lo, hi)`` of window ``o`` along one axis."""
    lo = o * s - p
    return max(lo, 0), min(lo + k, size)


@numba.njit(inline="always")
def _own_end(o, n_out, s, p, size):
    """One past the last input cell owned by window ``o`` along one axis: the next window's
    first cell, or the end of the input for the last window (window ``o`` owns from
    ``min(max(o*s - p, 0), size)``)."""
    return size if o + 1 == n_out else min(max((o + 1) * s - p, 0), size)


@numba.njit(inline="always")
def _bands(n_img, oh_n):
    """Output rows per backward task and bands per image: about ``_TASKS`` tasks, at most one
    image each."""
    band = max(1, min(oh_n, -(-n_img * oh_n // _TASKS)))
    return band, (oh_n + band - 1) // band


@numba.njit(inline="always")
def _task(t, band, bands, oh_n, kh, sh, pt, h):
    """Backward task ``t``: its image ``n``, the end ``oh1`` of its output rows, the input rows
    ``[r0, r1)`` it owns and ``o0``, the first window row that reaches row ``r0``."""
    n = t // bands
    oh0 = (t - n * bands) * band
    oh1 = min(oh0 + band, oh_n)
    r0 = min(max(oh0 * sh - pt, 0), h)
    r1 = _own_end(oh1 - 1, oh_n, sh, pt, h)
    o0 = oh0
    while o0 > 0 and (o0 - 1) * sh - pt + kh > r0:
        o0 -= 1
    return n, oh1, r0, r1, o0


@numba.njit(inline="always")
def _beats(v, best):
    """True if ``v``, met later in the scan, takes the window from ``best``: a first NaN or a
    strictly greater value (ties keep the first)."""
    return (v > best) | ((v != v) & (best == best))


@numba.njit(inline="always")
def _hit(v, winner):
    """True if the cell ``v`` holds the window's winning value: a NaN wins if any cell holds
    one, so a NaN cell holds the winner exactly when it is NaN."""
    return (v == winner) | (v != v)


@numba.njit(inline="always")
def _window_max(img, i0, i1, j0, j1, a, b):
    """The winner per channel of ``img[i0:i1, j0:j1]`` (one HWC image) in ``a`` or ``b``,
    whichever is returned; both are overwritten.

    Each cell's loop reads one buffer and writes the other: LLVM turns ``a[k] = v if cond else
    a[k]`` into masked stores, which are slow on AMD CPUs (half the speed measured).
    """
    c = img.shape[2]
    for k in range(c):
        a[k] = -np.inf
    for i in range(i0, i1):
        for j in range(j0, j1):
            xr = img[i, j]
            for k in range(c):
                v = xr[k]
                best = a[k]
                b[k] = v if _beats(v, best) else best
            a, b = b, a
    return a


@numba.njit(inline="always")
def _window_argmax(img, i0, i1, j0, j1, k_first, kw, a, b, ka, kb):
    """:func:`_window_max` with the winner's offset (``k_first`` for cell ``(i0, j0)``, in the
    image's dtype): returns ``(winners, offsets)``, each one of its two buffers."""
    c = img.shape[2]
    first = img[i0, j0]
    for k in range(c):
        a[k] = first[k]
        ka[k] = k_first
    for i in range(i0, i1):
        for j in range(j0, j1):
            if i == i0 and j == j0:
                continue
            xr = img[i, j]
            cell = img.dtype.type(k_first + (i - i0) * kw + j - j0)
            for k in range(c):
                v = xr[k]
                best = a[k]
                take = _beats(v, best)
                b[k] = v if take else best
                kb[k] = cell if take else ka[k]
            a, b = b, a
            ka, kb = kb, ka
    return a, ka


@numba.njit(inline="always")
def _zero_rows(img, z, i, end):
    """Zero the rows ``[z, i)`` of one image (none if ``i <= z``); return ``max(z, end)``."""
    for r in range(z, i):
        for j in range(img.shape[1]):
            row = img[r, j]
            for k in range(img.shape[2]):
                row[k] = 0
    return max(z, end)


@numba.njit(inline="always")
def _zero_cols(img, i0, i1, j0, j1):
    """Zero the cells ``[i0, i1) x [j0, j1)`` of one image."""
    for i in range(i0, i1):
        for j in range(j0, j1):
            cell = img[i, j]
            for k in range(img.shape[2]):
                cell[k] = 0
