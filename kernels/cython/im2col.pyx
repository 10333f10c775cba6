"""im2col / col2im over row tiles of the output, NHWC activations (``kernels/README.md``).

Output positions ``r = (n*OH + oh)*OW + ow`` of the whole batch are cut into tiles of whole
output rows; the tile starting at output row ``r0`` fills ``cols[g, r - r0*OW, (kh, kw, cg)]``.
``im2col`` writes every entry (zeros for padded cells); ``col2im``, its adjoint, adds the
columns back into ``gx`` as a gather: each thread owns one input row ``gx[n, ih]``.
"""
from cython cimport floating
from cython.parallel cimport prange
from cython.view cimport contiguous
from libc.string cimport memcpy, memset

from fastconv.kernels import _checks


def im2col(x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    """Unroll the tile of output rows ``[r0, r0 + cols.shape[1] // ow)`` of x into ``cols``.

    x ``(N, H, W, C)``; cols ``(G, rows*OW, KH*KW*Cg)`` (overwritten; only its last axis need
    be contiguous, so it may be a row slice of a larger workspace).
    """
    op = "im2col.im2col"
    _checks.arrays(op, {"x": (x, 4)}, {"cols": (cols, 3)}, contiguous=False)
    _checks.im2col(op, x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w)
    _im2col(x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w)


def col2im(cols, gx, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    """Adjoint of :func:`im2col`: **add** every ``cols`` entry to the ``gx`` cell it came from."""
    op = "im2col.col2im"
    _checks.arrays(op, {"cols": (cols, 3)}, {"gx": (gx, 4)}, contiguous=False)
    _checks.im2col(op, gx, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w)
    _col2im(cols, gx, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w)


def _im2col(const floating[:, :, :, ::1] x, floating[:, :, ::contiguous] cols, Py_ssize_t r0,
            Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t sh,
            Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], G = cols.shape[0]
    cdef Py_ssize_t Cg = cols.shape[2] // (KH * KW)
    cdef Py_ssize_t p, r, n, oh, ow, i, j, ih, iw, g
    cdef floating* cp
    with nogil:
        # each output position owns its rows cols[:, p]
        for p in prange(cols.shape[1], schedule="static"):
            r = r0 + p // OW
            ow = p - (p // OW) * OW
            n = r // OH
            oh = r - n * OH
            for g in range(G):
                for i in range(KH):
                    ih = oh * sh - pt + i * dil_h
                    for j in range(KW):
                        iw = ow * sw - pl + j * dil_w
                        cp = &cols[g, p, (i * KW + j) * Cg]
                        if 0 <= ih < H and 0 <= iw < W:
                            memcpy(cp, &x[n, ih, iw, g * Cg], Cg * sizeof(floating))
                        else:
                            memset(cp, 0, Cg * sizeof(floating))


def _col2im(const floating[:, :, ::contiguous] cols, floating[:, :, :, ::1] gx, Py_ssize_t r0,
            Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t sh,
            Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w):
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], G = cols.shape[0]
    cdef Py_ssize_t Cg = cols.shape[2] // (KH * KW), rows = cols.shape[1] // OW
    cdef Py_ssize_t q, n, oh, ow, i, j, ih, iw, a, g, c, last, first, end
    cdef const floating* cp
    cdef floating* gp
    if rows == 0 or H == 0:
        return
    # the (n, ih) input rows the tile touches, numbered q = n*H + ih, lie within [first, end)
    last = r0 + rows - 1
    first = (r0 // OH) * H + min(max((r0 % OH) * sh - pt, 0), H)
    end = (last // OH) * H + max(min((last % OH) * sh - pt + dil_h * (KH - 1), H - 1), -1) + 1
    with nogil:
        # gather: each (n, ih) owns the input row gx[n, ih]
        for q in prange(first, end, schedule="static"):
            n = q // H
            ih = q - n * H
            for i in range(KH):
                a = ih + pt - i * dil_h
                if a < 0 or a % sh:
                    continue
                oh = a // sh
                if oh >= OH or n * OH + oh < r0 or n * OH + oh > last:
                    continue
                for ow in range(OW):
                    for j in range(KW):
                        iw = ow * sw - pl + j * dil_w
                        if iw < 0 or iw >= W:
                            continue
                        for g in range(G):
                            cp = &cols[g, (n * OH + oh - r0) * OW + ow, (i * KW + j) * Cg]
                            gp = &gx[n, ih, iw, g * Cg]
                            for c in range(Cg):
                                gp[c] += cp[c]
