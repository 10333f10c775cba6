"""Max and average 2-D pooling and their gradients, NHWC (``kernels/README.md``).

Padded cells are absent: max ignores them and average divides by the number of real cells in
the window (Keras' rule); every window must hold at least one real cell. Max pooling's winner
is the window's first NaN, else its first maximum, scanning rows then columns; its gradient
goes to the winner only. Each public function checks its arguments in plain Python, then runs
a fused (float32/float64) kernel without the GIL whose innermost loop runs over channels.

The ``_indices`` pair keeps the winner's offset ``i*kw + j`` in its window (uint8: windows of
at most 256 cells) so that the backward pass scatters ``gy`` by offset without reading x. The
loops carry offsets as floating values, so their selects and compares have the width of the
data and vectorise; an offset that names no real cell of its window matches nothing.

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

cdef extern from *:
    """
    #include "fc_isa.h"
    /* One window's gradient from its offsets: for its ni x nj real cells from gx (cell (i, j)
       at gx + i*row + j*step, offset k0 + i*kw + j), gx[c] = (or += if add) gy[c] where idx[c]
       names the cell, for c < n <= 256. Offsets compare as T: same-width lanes. */
    #define FC_SCATTER(T)                                                                    \\
    FC_CLONES static void fc_scatter_##T(Py_ssize_t n, const unsigned char* restrict idx,   \\
                                         const T* restrict gy, T* restrict gx,              \\
                                         Py_ssize_t ni, Py_ssize_t nj, Py_ssize_t row,      \\
                                         Py_ssize_t step, Py_ssize_t k0, Py_ssize_t kw,     \\
                                         int add) {                                         \\
        T at[256];                                                                          \\
        for (Py_ssize_t c = 0; c < n; c++)                                                  \\
            at[c] = idx[c];                                                                 \\
        for (Py_ssize_t i = 0; i < ni; i++)                                                 \\
            for (Py_ssize_t j = 0; j < nj; j++) {                                           \\
                T k = k0 + i * kw + j;                                                      \\
                T* g = gx + i * row + j * step;                                             \\
                if (add)                                                                    \\
                    for (Py_ssize_t c = 0; c < n; c++) {                                    \\
                        T v = gy[c];                                                        \\
                        g[c] += at[c] == k ? v : 0;                                         \\
                    }                                                                       \\
                else                                                                        \\
                    for (Py_ssize_t c = 0; c < n; c++) {                                    \\
                        T v = gy[c];                                                        \\
                        g[c] = at[c] == k ? v : 0;                                          \\
                    }                                                                       \\
            }                                                                               \\
    }
    FC_SCATTER(float)
    FC_SCATTER(double)
    """
    void fc_scatter_float(Py_ssize_t n, const unsigned char* idx, const float* gy, float* gx,
                          Py_ssize_t ni, Py_ssize_t nj, Py_ssize_t row, Py_ssize_t step,
                          Py_ssize_t k0, Py_ssize_t kw, int add) noexcept nogil
    void fc_scatter_double(Py_ssize_t n, const unsigned char* idx, const double* gy,
                           double* gx, Py_ssize_t ni, Py_ssize_t nj, Py_ssize_t row,
                           Py_ssize_t step, Py_ssize_t k0, Py_ssize_t kw,
                           int add) noexcept nogil

# channels per block of the scratch on the stack; the backward passes' modes
cdef enum:
    BLOCK = 256
    MAX = 0
    AVG = 1
    OFFSETS = 2

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
    _backward(MAX, x, None, gy, gx, kh, kw, sh, sw, pt, pl, _band(gy.shape))


def max_forward_indices(x, y, idx, kh, kw, sh, sw, pt, pl):
    """:func:`max_forward`, and ``idx[n, oh, ow, c]`` (uint8, overwritten) = the winner's
    offset ``i*kw + j`` in its window."""
    op = "pool.max_forward_indices"
    _checks.arrays(op, {"x": (x, 4)}, {"y": (y, 4)})
    kh, kw, sh, sw, pt, pl = _checks.pool(op, x.shape, y.shape, "x", "y", kh, kw, sh, sw, pt, pl)
    _checks.window_offsets(op, idx, y.shape, kh * kw, {"x": x, "y": y}, output=True)
    _max_forward_indices(x, y, idx, kh, kw, sh, sw, pt, pl)


def max_backward_indices(idx, gy, gx, kh, kw, sh, sw, pt, pl):
    """Gradient of :func:`max_forward_indices` from its offsets: ``gx`` (overwritten) gets each
    ``gy`` at the cell ``idx`` names; x is not read."""
    op = "pool.max_backward_indices"
    _checks.arrays(op, {"gy": (gy, 4)}, {"gx": (gx, 4)})
    kh, kw, sh, sw, pt, pl = _checks.pool(op, gx.shape, gy.shape, "gx", "gy", kh, kw, sh, sw,
                                          pt, pl)
    _checks.window_offsets(op, idx, gy.shape, kh * kw, {"gx": gx}, output=False)
    _backward(OFFSETS, gx, idx, gy, gx, kh, kw, sh, sw, pt, pl, _band(gy.shape))


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
    _backward(AVG, gx, None, gy, gx, kh, kw, sh, sw, pt, pl, _band(gy.shape))


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


def _max_forward_indices(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                         unsigned char[:, :, :, ::1] idx, Py_ssize_t KH, Py_ssize_t KW,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl):
    cdef Py_ssize_t OH = y.shape[1], t, n, oh
    with nogil:
        # each (n, oh) owns the output row y[n, oh] and its offsets
        for t in prange(y.shape[0] * OH, schedule="static"):
            n = t // OH
            oh = t - n * OH
            _argmax_row(&x[n, 0, 0, 0], &y[n, oh, 0, 0], &idx[n, oh, 0, 0], x.shape[1],
                        x.shape[2], x.shape[3], y.shape[2], KH, KW, sw, pl, oh * sh - pt)


cdef void _argmax_row(const floating* x, floating* y, unsigned char* idx, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t C, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                      Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t h0) noexcept nogil:
    """One output row (y, idx: ``OW*C``) of the windows from input row ``h0`` of one image
    (x: ``H*W*C``): each window's winner and its offset."""
    cdef floating value[BLOCK]
    cdef floating at[BLOCK]  # the winner's offset
    cdef Py_ssize_t i0 = max(h0, 0), i1 = min(h0 + KH, H)
    cdef Py_ssize_t ow, i, j, c, b, c0, nc, w0, j0, j1
    cdef floating v, f, k
    cdef bint take
    cdef const floating* xp
    for ow in range(OW):
        w0 = ow * sw - pl
        j0 = max(w0, 0)
        j1 = min(w0 + KW, W)
        for b in range((C + BLOCK - 1) // BLOCK):
            c0 = b * BLOCK
            nc = min(BLOCK, C - c0)
            # the first real cell leads; a later one takes over as in _max_forward
            xp = x + (i0 * W + j0) * C + c0
            k = (i0 - h0) * KW + j0 - w0
            for c in range(nc):
                value[c] = xp[c]
                at[c] = k
            for i in range(i0, i1):
                for j in range(j0, j1):
                    if i == i0 and j == j0:
                        continue
                    xp = x + (i * W + j) * C + c0
                    k = (i - h0) * KW + j - w0
                    for c in range(nc):
                        v = xp[c]
                        f = value[c]
                        take = (f == f) & (not v <= f)
                        value[c] = v if take else f
                        at[c] = k if take else at[c]
            for c in range(nc):
                y[ow * C + c0 + c] = value[c]
                idx[ow * C + c0 + c] = <unsigned char>at[c]


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


def _backward(int mode, const floating[:, :, :, ::1] x, idx, const floating[:, :, :, ::1] gy,
              floating[:, :, :, ::1] gx, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
              Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t band):
    """The gradient of max pooling from x (``MAX``) or from the offsets ``idx`` (``OFFSETS``),
    or of average pooling (``AVG``); x is unused (gx) unless ``MAX``, idx unless ``OFFSETS``."""
    cdef const unsigned char[:, :, :, ::1] offsets = idx
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3]
    cdef Py_ssize_t OH = gy.shape[1], OW = gy.shape[2], bands = (OH + band - 1) // band
    cdef Py_ssize_t t, n, oh
    with nogil:
        for t in prange(gx.shape[0] * bands, schedule="static"):
            n = t // bands
            oh = (t - n * bands) * band
            _grad_rows(mode, &x[n, 0, 0, 0], &offsets[n, 0, 0, 0] if mode == OFFSETS else NULL,
                       &gy[n, 0, 0, 0], &gx[n, 0, 0, 0], H, W, C, OH, OW, KH, KW, sh, sw, pt,
                       pl, oh, min(oh + band, OH))


cdef void _grad_rows(int mode, const floating* x, const unsigned char* idx, const floating* gy,
                     floating* gx, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t OH,
                     Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t oh0,
                     Py_ssize_t oh1) noexcept nogil:
    """The input rows ``[r0, r1)`` of one image owned by the output rows ``[oh0, oh1)``: their
    gradient from every window that covers them (x, gx: ``H*W*C``, gy, idx: ``OH*OW*C``)."""
    # per channel: the window's winning value (MAX) or share of the gradient (AVG), and (MAX)
    # the gradient not yet placed: it goes to the first cell that holds the winner
    cdef floating value[BLOCK]
    cdef floating pending[BLOCK]
    cdef bint disjoint = sh >= KH and sw >= KW
    cdef Py_ssize_t r0 = _clip(oh0 * sh - pt, H), r1 = _own_end(oh1 - 1, OH, sh, pt, H)
    cdef Py_ssize_t z = r0  # the owned rows before z are zeroed (or written: disjoint)
    cdef Py_ssize_t o, ow, i, j, c, b, c0, nc, h0, w0, i0, i1, j0, j1, e1, row = W * C
    cdef floating f, cells
    cdef bint hit, is_max = mode == MAX
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
                if mode == OFFSETS:  # the window's owned rows in one call, AVX2 where it can
                    i = max(i0, r0)
                    if floating is float:
                        fc_scatter_float(nc, idx + (o * OW + ow) * C + c0, gp,
                                         gx + (i * W + j0) * C + c0, min(i1, r1) - i, j1 - j0,
                                         row, C, (i - h0) * KW + j0 - w0, KW, not disjoint)
                    else:
                        fc_scatter_double(nc, idx + (o * OW + ow) * C + c0, gp,
                                          gx + (i * W + j0) * C + c0, min(i1, r1) - i, j1 - j0,
                                          row, C, (i - h0) * KW + j0 - w0, KW, not disjoint)
                    continue
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
