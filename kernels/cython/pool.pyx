"""Max and average 2-D pooling and their gradients, NHWC (``kernels/README.md``).

Padded cells are absent: max ignores them and average divides by the number of real cells in
the window (Keras' rule); every window must hold at least one real cell. Max pooling's winner
is the window's first NaN, else its first maximum, scanning rows then columns; its gradient
goes to the winner only. Each public function checks its arguments in plain Python, then runs
a fused (float32/float64) kernel without the GIL whose innermost loop runs over channels.

The forward kernels run one task per (image, output row). The backward kernels run one task
per (image, band of output rows); a task owns the input rows from its first window's first row
to the next band's first window row (``_own_end``) and gathers the gradient of every window
that covers them, so each cell of ``gx`` has one writer. When the windows do not overlap
(stride >= window) each cell is written once, directly; otherwise the owned rows are zeroed
just before their first window (while in cache) and accumulated.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.string cimport memset

from fastconv.kernels import _checks

# channels per block of the backward passes' scratch on the stack
cdef enum:
    BLOCK = 256

# backward tasks wanted: whole images per task if the batch gives this many, else bands of
# output rows (a band re-scans the overlapping windows that straddle its first row)
_TASKS = 128


cdef inline Py_ssize_t _clip(Py_ssize_t v, Py_ssize_t size) noexcept nogil:
    """``v`` clipped to ``[0, size]``."""
    return 0 if v < 0 else (size if v > size else v)


cdef inline Py_ssize_t _own_end(Py_ssize_t o, Py_ssize_t n_out, Py_ssize_t s, Py_ssize_t p,
                                Py_ssize_t size) noexcept nogil:
    """One past the last input cell owned by window ``o`` along one axis: the next window's
    first cell, or the end of the input for the last window (window ``o`` owns from
    ``_clip(o*s - p, size)``)."""
    return size if o + 1 == n_out else _clip((o + 1) * s - p, size)


cdef inline bint _hit(floating v, floating winner) noexcept nogil:
    """True if the cell ``v`` holds the window's winning value: a NaN wins if any cell holds
    one, so a NaN cell holds the winner exactly when it is NaN."""
    return (v == winner) | (v != v)


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
    _backward(True, x, gy, gx, kh, kw, sh, sw, pt, pl, _band(gy.shape))


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
    _backward(False, gx, gy, gx, kh, kw, sh, sw, pt, pl, _band(gy.shape))


def _band(y_shape):
    """Output rows per backward task: about ``_TASKS`` tasks, at most one image each."""
    n, oh = y_shape[0], y_shape[1]
    return max(1, min(oh, -(-n * oh // _TASKS)))


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
                for i in range(max(h0, 0), min(h0 + KH, H)):
                    for j in range(max(w0, 0), min(w0 + KW, W)):
                        xp = &x[n, i, j, 0]
                        for c in range(C):
                            v = xp[c]
                            best = yp[c]
                            # a later cell wins if the best is no NaN and the cell is larger or
                            # NaN: a branch-free select (bitwise operators) that vectorises
                            yp[c] = v if (best == best) & (not v <= best) else best


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
                for i in range(max(h0, 0), min(h0 + KH, H)):
                    for j in range(max(w0, 0), min(w0 + KW, W)):
                        xp = &x[n, i, j, 0]
                        for c in range(C):
                            yp[c] += xp[c]
                cells = ((min(h0 + KH, H) - max(h0, 0)) * (min(w0 + KW, W) - max(w0, 0)))
                for c in range(C):
                    yp[c] /= cells


def _backward(bint is_max, const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
              floating[:, :, :, ::1] gx, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
              Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t band):
    """Max (``is_max``) or average pooling's gradient; x is unused (gx) for the average."""
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3]
    cdef Py_ssize_t OH = gy.shape[1], OW = gy.shape[2], bands = (OH + band - 1) // band
    cdef Py_ssize_t t, n, oh
    with nogil:
        for t in prange(gx.shape[0] * bands, schedule="static"):
            n = t // bands
            oh = (t - n * bands) * band
            _grad_rows(is_max, &x[n, 0, 0, 0], &gy[n, 0, 0, 0], &gx[n, 0, 0, 0], H, W, C, OH,
                       OW, KH, KW, sh, sw, pt, pl, oh, min(oh + band, OH))


cdef void _grad_rows(bint is_max, const floating* x, const floating* gy, floating* gx,
                     Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t OH, Py_ssize_t OW,
                     Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                     Py_ssize_t pl, Py_ssize_t oh0, Py_ssize_t oh1) noexcept nogil:
    """The input rows ``[r0, r1)`` of one image owned by the output rows ``[oh0, oh1)``: their
    gradient from every window that covers them (x, gx: ``H*W*C``, gy: ``OH*OW*C``)."""
    # per channel: the window's winning value (max) or share of the gradient (average), and
    # (max) the gradient not yet placed: it goes to the first cell that holds the winner
    cdef floating value[BLOCK]
    cdef floating pending[BLOCK]
    cdef bint disjoint = sh >= KH and sw >= KW
    cdef Py_ssize_t r0 = _clip(oh0 * sh - pt, H), r1 = _own_end(oh1 - 1, OH, sh, pt, H)
    cdef Py_ssize_t z = r0  # the owned rows before z are zeroed (or written: disjoint)
    cdef Py_ssize_t o, ow, i, j, c, b, c0, nc, h0, w0, i0, i1, j0, j1, e1, row = W * C
    cdef floating f, cells
    cdef bint hit
    cdef const floating* xp
    cdef const floating* gp
    cdef const floating* src
    cdef floating* gxp
    # the first window row that reaches row r0
    o = oh0
    while o > 0 and (o - 1) * sh - pt + KH > r0:
        o -= 1
    while o < oh1:
        h0 = o * sh - pt
        i0 = max(h0, 0)
        i1 = min(h0 + KH, H)
        # zero the rows up to this window (disjoint: it writes its rows), or up to its end
        i = i0 if disjoint else min(i1, r1)
        if i > z:
            memset(gx + z * row, 0, (i - z) * row * sizeof(floating))
        z = max(z, min(i1, r1))
        for ow in range(OW):
            w0 = ow * sw - pl
            j0 = max(w0, 0)
            j1 = min(w0 + KW, W)
            for b in range((C + BLOCK - 1) // BLOCK):
                c0 = b * BLOCK
                nc = min(BLOCK, C - c0)
                gp = gy + (o * OW + ow) * C + c0
                if is_max:
                    for c in range(nc):
                        value[c] = -INFINITY
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            xp = x + (i * W + j) * C + c0
                            for c in range(nc):  # the select of _max_forward
                                f = value[c]
                                value[c] = xp[c] if (f == f) & (not xp[c] <= f) else f
                else:
                    cells = (i1 - i0) * (j1 - j0)
                    for c in range(nc):
                        value[c] = gp[c] / cells
                # the gradient not yet placed (max): gy's until the first cell, then pending
                src = gp
                # rows above r0 only tell (max) whether the winner came before the owned rows
                for i in range(i0 if is_max else max(i0, r0), min(i1, r1)):
                    for j in range(j0, j1):
                        xp = x + (i * W + j) * C + c0
                        gxp = gx + (i * W + j) * C + c0
                        # selects, not branches: which cell wins is unpredictable
                        if not is_max and disjoint:
                            for c in range(nc):
                                gxp[c] = value[c]
                        elif not is_max:
                            for c in range(nc):
                                gxp[c] += value[c]
                        elif disjoint:
                            for c in range(nc):
                                hit = _hit(xp[c], value[c])
                                f = src[c]
                                pending[c] = 0 if hit else f
                                gxp[c] = f if hit else 0
                        elif i >= r0:
                            for c in range(nc):
                                hit = _hit(xp[c], value[c])
                                f = src[c]
                                pending[c] = 0 if hit else f
                                gxp[c] += f if hit else 0
                        else:
                            for c in range(nc):
                                f = src[c]
                                pending[c] = 0 if _hit(xp[c], value[c]) else f
                        src = pending
            e1 = _own_end(ow, OW, sw, pl, W)
            if disjoint and e1 > j1:  # zero the owned columns right of the window
                for i in range(i0, i1):
                    memset(gx + (i * W + j1) * C, 0, (e1 - j1) * C * sizeof(floating))
        o += 1
    memset(gx + z * row, 0, (r1 - z) * row * sizeof(floating))
