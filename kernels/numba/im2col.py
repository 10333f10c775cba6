"""im2col / col2im over row tiles, NHWC, Numba backend (``kernels/README.md``, "im2col tiles").

Output positions are numbered ``r = (n*OH + oh)*OW + ow``; a tile starting at output row
``r0 = n*OH + oh`` holds ``cols.shape[1] // OW`` whole output rows (it may cross images).
``cols[g, (row - r0)*OW + ow, (i*KW + j)*Cg + ci]`` is the input cell of channel ``g*Cg + ci``
under filter tap ``(i, j)`` of that output position, zero where it falls in the padding.

``cols`` may be a row slice of a larger workspace (``work[:, :m]``), so only its last axis
must be contiguous.
"""
import numba
from numba import prange

from fastconv.kernels import _checks

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: it measured no clear gain, and its nnan/ninf flags would
# break NaN propagation.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")


def im2col(x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    """Unroll the tile of output rows starting at ``r0`` into ``cols`` (overwritten)."""
    op = "im2col.im2col"
    _checks.arrays(op, {"x": (x, 4)}, {"cols": (cols, 3)}, contiguous=False)
    args = _checks.im2col(op, x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w)
    _im2col(x, cols, *args)


def col2im(cols, gx, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    """The adjoint of :func:`im2col`: **add** each column of the tile into ``gx``."""
    op = "im2col.col2im"
    _checks.arrays(op, {"cols": (cols, 3)}, {"gx": (gx, 4)}, contiguous=False)
    args = _checks.im2col(op, gx, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w)
    _col2im(cols, gx, *args)


# ------------------------------------------------------------------------------------ kernels
# Innermost loops index 1-D row views from 0, which LLVM vectorises (see conv_direct.py).

@numba.njit(**_JIT)
def _im2col(x, cols, r0, kh, kw, oh_n, ow_n, sh, sw, pt, pl, dil_h, dil_w):
    h, wd = x.shape[1], x.shape[2]
    groups, m, k = cols.shape
    cg = k // (kh * kw)
    # each output position of the tile owns its row cols[:, p, :]
    for p in prange(m):
        row = r0 + p // ow_n
        ow = p - (p // ow_n) * ow_n
        n = row // oh_n
        oh = row - n * oh_n
        for i in range(kh):
            ih = oh * sh - pt + i * dil_h
            for j in range(kw):
                iw = ow * sw - pl + j * dil_w
                k0 = (i * kw + j) * cg
                if ih < 0 or ih >= h or iw < 0 or iw >= wd:
                    for g in range(groups):
                        cr = cols[g, p, k0:k0 + cg]
                        for ci in range(cg):
                            cr[ci] = 0
                else:
                    xr = x[n, ih, iw]
                    for g in range(groups):
                        cr = cols[g, p, k0:k0 + cg]
                        xg = xr[g * cg:(g + 1) * cg]
                        for ci in range(cg):
                            cr[ci] = xg[ci]


@numba.njit(**_JIT)
def _col2im(cols, gx, r0, kh, kw, oh_n, ow_n, sh, sw, pt, pl, dil_h, dil_w):
    h, wd = gx.shape[1], gx.shape[2]
    groups, m, k = cols.shape
    cg = k // (kh * kw)
    if m == 0:
        return
    r1 = r0 + m // ow_n  # one past the tile's last output row
    n0 = r0 // oh_n
    n1 = (r1 - 1) // oh_n
    # gather: each input row (n, ih) of the images the tile touches owns gx[n, ih]
    for t in prange((n1 - n0 + 1) * h):
        n = n0 + t // h
        ih = t - (t // h) * h
        for i in range(kh):
            a = ih + pt - i * dil_h
            if a < 0 or a % sh:
                continue
            row = n * oh_n + a // sh
            if a // sh >= oh_n or row < r0 or row >= r1:
                continue
            p0 = (row - r0) * ow_n
            for j in range(kw):
                k0 = (i * kw + j) * cg
                for ow in range(ow_n):
                    iw = ow * sw - pl + j * dil_w
                    if iw < 0 or iw >= wd:
                        continue
                    gxr = gx[n, ih, iw]
                    for g in range(groups):
                        gxg = gxr[g * cg:(g + 1) * cg]
                        cr = cols[g, p0 + ow, k0:k0 + cg]
                        for ci in range(cg):
                            gxg[ci] += cr[ci]
