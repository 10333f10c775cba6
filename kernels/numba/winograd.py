"""Winograd F(m x m, 3x3) tile transforms, m = 2, 3 or 4, NHWC, Numba backend (``kernels/README.md``,
"Winograd tiles").

Tiles of ``m x m`` output cells are numbered ``t = (n*th + ti)*tw + tj`` over the batch; a call
transforms the block of tiles ``[t0, t0 + T)``. Transform points (``A = m + 2`` per side) are
stored ``v[a*A + b, t, channel]``: one ``(T, channels)`` matrix per point, for the GEMMs.

- ``input_transform``: ``v = B^T d B`` of each tile's ``A x A`` input patch ``d`` (cells outside
  ``x`` are zeros);
- ``output_transform``: ``y = A^T M A`` into the tile's ``m x m`` output cells inside ``y``;
- ``output_transform_t``: its transpose, ``dm = A gy A^T`` (the weight gradient's side).

Each is two passes of 1-D transforms (hard-coded: Lavin & Gray's matrices for m = 2 and 4, the
points 0, 1, -1, 2 and infinity for m = 3) through per-thread
buffers of at most 64 channels, the tiles split statically over the threads; the 1-D transforms
run over the contiguous channels. Tiles at the edges go through a zero-filled (or cropped) copy.
"""
import numba
import numpy as np
from numba import prange

from fastconv.kernels import _checks

# error_model="numpy": no ZeroDivisionError checks inside the loops (every divisor is checked
# positive by the wrapper). No fastmath: it measured no clear gain elsewhere in these kernels.
_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")
_CB = 64  # channels per pass through the tile buffers


def input_transform(x, v, t0, m, th, tw, pt, pl):
    """``v[:, t]`` = ``B^T d B`` of tile ``t0 + t``'s ``(m+2) x (m+2)`` patch ``d`` of x, from row
    ``ti*m - pt``, column ``tj*m - pl`` (either may be negative) of image ``n``.

    x ``(N, H, W, C)``; v ``((m+2)^2, T, C)`` (overwritten); a ``th x tw`` tile grid per image.
    """
    op = "winograd.input_transform"
    _checks.arrays(op, {"x": (x, 4)}, {"v": (v, 3)})
    t0, m, th, tw, pt, pl = _checks.winograd_tiles(op, x, v, t0, m, th, tw, pt, pl)
    if v.size:
        _gather(x, v, numba.get_num_threads(), t0, m, th, tw, pt, pl, m + 2, m - 2)


def output_transform_t(gy, dm, t0, m):
    """``dm[:, t]`` = ``A g A^T`` of tile ``t0 + t``'s ``m x m`` cells ``g`` of gy (zeros past
    its edges): the transpose of :func:`output_transform`, the grid ``ceil(OH/m) x ceil(OW/m)``.

    gy ``(N, OH, OW, K)``; dm ``((m+2)^2, T, K)`` (overwritten).
    """
    op = "winograd.output_transform_t"
    _checks.arrays(op, {"gy": (gy, 4)}, {"dm": (dm, 3)})
    th, tw = _checks.winograd_grid(op, gy, m)
    t0, m, th, tw, _, _ = _checks.winograd_tiles(op, gy, dm, t0, m, th, tw, 0, 0)
    if dm.size:
        _gather(gy, dm, numba.get_num_threads(), t0, m, th, tw, 0, 0, m, m + 4)


def output_transform(mv, y, t0, m):
    """Tile ``t0 + t``'s ``m x m`` cells of y (those inside y: overwritten) = ``A^T M A`` of
    ``M = mv[:, t]``, the grid ``ceil(OH/m) x ceil(OW/m)``.

    mv ``((m+2)^2, T, K)``; y ``(N, OH, OW, K)``.
    """
    op = "winograd.output_transform"
    _checks.arrays(op, {"mv": (mv, 3)}, {"y": (y, 4)})
    th, tw = _checks.winograd_grid(op, y, m)
    t0, m, th, tw, _, _ = _checks.winograd_tiles(op, y, mv, t0, m, th, tw, 0, 0)
    if mv.size:
        _scatter(mv, y, numba.get_num_threads(), t0, m, th, tw)


# ------------------------------------------------------------------------------------ kernels
# The arrays go in flat (1-D, C order) with offsets, as the Cython kernel passes pointers: the
# innermost loops then run over contiguous 1-D slices indexed from 0, which LLVM vectorises.

@numba.njit(inline="always")
def _tf(kind, n, d, di, ds, o, oi, os, c):
    """One 1-D transform of ``n`` channels: inputs ``d[di + i*ds + k]``, outputs
    ``o[oi + r*os + k]``. ``kind = 3*stage + m - 2``, stages: B^T (m+2 -> m+2), A^T
    (m+2 -> m), A (m -> m+2); m = 3 uses the points 0, 1, -1, 2. ``c`` = (2, 3, 4, 5, 8) in the
    arrays' dtype (integer literals would promote float32 to float64)."""
    c2, c3, c4, c5, c8 = c[0], c[1], c[2], c[3], c[4]
    d0, d1 = d[di:di + n], d[di + ds:di + ds + n]
    o0, o1 = o[oi:oi + n], o[oi + os:oi + os + n]
    if kind == 6:
        o2, o3 = o[oi + 2 * os:oi + 2 * os + n], o[oi + 3 * os:oi + 3 * os + n]
        for k in range(n):
            o0[k] = d0[k]
            o1[k] = d0[k] + d1[k]
            o2[k] = d0[k] - d1[k]
            o3[k] = -d1[k]
        return
    d2 = d[di + 2 * ds:di + 2 * ds + n]
    if kind == 7:
        o2, o3 = o[oi + 2 * os:oi + 2 * os + n], o[oi + 3 * os:oi + 3 * os + n]
        o4 = o[oi + 4 * os:oi + 4 * os + n]
        for k in range(n):
            s02 = d0[k] + d2[k]
            o0[k] = d0[k]
            o1[k] = s02 + d1[k]
            o2[k] = s02 - d1[k]
            o3[k] = d0[k] + c2 * d1[k] + c4 * d2[k]
            o4[k] = d2[k]
        return
    d3 = d[di + 3 * ds:di + 3 * ds + n]
    if kind == 0:
        o2, o3 = o[oi + 2 * os:oi + 2 * os + n], o[oi + 3 * os:oi + 3 * os + n]
        for k in range(n):
            o0[k] = d0[k] - d2[k]
            o1[k] = d1[k] + d2[k]
            o2[k] = d2[k] - d1[k]
            o3[k] = d1[k] - d3[k]
    elif kind == 3:
        for k in range(n):
            o0[k] = d0[k] + d1[k] + d2[k]
            o1[k] = d1[k] - d2[k] - d3[k]
    elif kind == 8:
        o2, o3 = o[oi + 2 * os:oi + 2 * os + n], o[oi + 3 * os:oi + 3 * os + n]
        o4, o5 = o[oi + 4 * os:oi + 4 * os + n], o[oi + 5 * os:oi + 5 * os + n]
        for k in range(n):
            s02, s13 = d0[k] + d2[k], d1[k] + d3[k]
            f02, f13 = d0[k] + c4 * d2[k], c2 * d1[k] + c8 * d3[k]
            o0[k] = d0[k]
            o1[k] = s02 + s13
            o2[k] = s02 - s13
            o3[k] = f02 + f13
            o4[k] = f02 - f13
            o5[k] = d3[k]
    else:
        d4 = d[di + 4 * ds:di + 4 * ds + n]
        o2 = o[oi + 2 * os:oi + 2 * os + n]
        if kind == 1:
            o3, o4 = o[oi + 3 * os:oi + 3 * os + n], o[oi + 4 * os:oi + 4 * os + n]
            for k in range(n):
                m31 = d3[k] - d1[k]
                o0[k] = c2 * (d0[k] - d2[k]) + m31
                o1[k] = m31 - d1[k] - d2[k]
                o2[k] = m31 + c3 * (d1[k] - d2[k])
                o3[k] = m31
                o4[k] = d4[k] - d2[k] - c2 * m31
            return
        if kind == 4:
            for k in range(n):
                s12 = d1[k] + d2[k]
                o0[k] = d0[k] + s12 + d3[k]
                o1[k] = d1[k] - d2[k] + c2 * d3[k]
                o2[k] = s12 + c4 * d3[k] + d4[k]
            return
        d5 = d[di + 5 * ds:di + 5 * ds + n]
        o3 = o[oi + 3 * os:oi + 3 * os + n]
        if kind == 5:
            for k in range(n):
                s12, m12 = d1[k] + d2[k], d1[k] - d2[k]
                s34, m34 = d3[k] + d4[k], d3[k] - d4[k]
                o0[k] = d0[k] + s12 + s34
                o1[k] = m12 + c2 * m34
                o2[k] = s12 + c4 * s34
                o3[k] = m12 + c8 * m34 + d5[k]
            return
        o4, o5 = o[oi + 4 * os:oi + 4 * os + n], o[oi + 5 * os:oi + 5 * os + n]
        # one output row per loop: LLVM vectorises these six better than one loop of six rows
        for k in range(n):
            o0[k] = c4 * d0[k] - c5 * d2[k] + d4[k]
        for k in range(n):
            o1[k] = (d3[k] + d4[k]) - c4 * (d1[k] + d2[k])
        for k in range(n):
            o2[k] = (d4[k] - d3[k]) + c4 * (d1[k] - d2[k])
        for k in range(n):
            o3[k] = (d4[k] - d2[k]) - c2 * (d1[k] - d3[k])
        for k in range(n):
            o4[k] = (d4[k] - d2[k]) + c2 * (d1[k] - d3[k])
        for k in range(n):
            o5[k] = c4 * d1[k] - c5 * d3[k] + d5[k]


@numba.njit(inline="always")
def _consts(a):
    """(2, 3, 4, 5, 8) in ``a``'s dtype."""
    c = np.empty(5, a.dtype)
    c[0], c[1], c[2], c[3], c[4] = 2, 3, 4, 5, 8
    return c


@numba.njit(inline="always")
def _gather_tile(s, n, h, wd, c, kind, p, na, r0, q0, vf, vo, plane, buf, tmp, c4):
    """One tile: the ``p x p`` patch of image n of src (flat ``s``) at ``(r0, q0)`` -> its
    ``A x A`` points at ``vf[vo:]``, ``plane`` apart."""
    inside = r0 >= 0 and q0 >= 0 and r0 + p <= h and q0 + p <= wd
    j0 = max(0, -q0)
    j1 = max(j0, min(p, wd - q0))
    for c0 in range(0, c, _CB):
        cb = min(_CB, c - c0)   # buf and tmp: cells cb apart (one copy per row if cb == c)
        if not inside:      # buf[i, j] = the patch, zeros outside src
            for i in range(p):
                row = buf[i * p * cb:(i + 1) * p * cb]
                if not 0 <= r0 + i < h:
                    row[:] = 0
                    continue
                row[:j0 * cb] = 0
                if cb == c:
                    sr = s[((n * h + r0 + i) * wd + q0 + j0) * c:][:(j1 - j0) * c]
                    br = row[j0 * cb:j1 * cb]
                    for k in range((j1 - j0) * c):
                        br[k] = sr[k]
                else:
                    for j in range(j0, j1):
                        sij = s[((n * h + r0 + i) * wd + q0 + j) * c + c0:][:cb]
                        bij = row[j * cb:(j + 1) * cb]
                        for k in range(cb):
                            bij[k] = sij[k]
                row[j1 * cb:] = 0
        # columns j: tmp[a, j] = (M d)[a, j]
        for j in range(p):
            if inside:
                _tf(kind, cb, s, ((n * h + r0) * wd + q0 + j) * c + c0, wd * c,
                    tmp, j * cb, p * cb, c4)
            else:
                _tf(kind, cb, buf, j * cb, p * cb, tmp, j * cb, p * cb, c4)
        # rows a: v[a*A + b] = (tmp M^T)[a, b]
        for a in range(na):
            _tf(kind, cb, tmp, a * p * cb, cb, vf, vo + a * na * plane + c0, plane, c4)


@numba.njit(inline="always")
def _scatter_tile(mf, mo, plane, m, na, d, n, h, wd, k_n, r0, q0, buf, tmp, c4):
    """One tile: its ``A x A`` points at ``mf[mo:]``, ``plane`` apart -> the ``m x m`` cells of
    image n of dst (flat ``d``) at ``(r0, q0)`` that lie inside it."""
    kind = m + 1
    pn, qn = min(m, h - r0), min(m, wd - q0)
    for k0 in range(0, k_n, _CB):
        kb = min(_CB, k_n - k0)
        # columns b: tmp[p, b] = (A^T M)[p, b]
        for b in range(na):
            _tf(kind, kb, mf, mo + b * plane + k0, na * plane, tmp, b * _CB, na * _CB, c4)
        # rows p: dst[r0 + p, q0 + j] = (tmp A)[p, j]
        for p in range(pn):
            row = ((n * h + r0 + p) * wd + q0) * k_n + k0
            if qn == m:
                _tf(kind, kb, tmp, p * na * _CB, _CB, d, row, k_n, c4)
            else:
                _tf(kind, kb, tmp, p * na * _CB, _CB, buf, 0, _CB, c4)
                for j in range(qn):
                    dj = d[row + j * k_n:row + j * k_n + kb]
                    bj = buf[j * _CB:j * _CB + kb]
                    for k in range(kb):
                        dj[k] = bj[k]


@numba.njit(**_JIT)
def _gather(src, v, threads, t0, m, th, tw, pt, pl, p, kind):
    """Each tile's ``p x p`` patch of src -> its ``A x A`` points in v (``A = m + 2``)."""
    h, wd, c = src.shape[1], src.shape[2], src.shape[3]
    na, t_n = m + 2, v.shape[1]
    s, vf = src.reshape(-1), v.reshape(-1)
    plane = t_n * c
    chunks = min(threads, t_n)
    c4 = _consts(v)
    # a static split of the tiles; each tile owns its column v[:, t]
    for chunk in prange(chunks):
        buf = np.empty(p * p * _CB, v.dtype)
        tmp = np.empty(na * p * _CB, v.dtype)
        for t in range(t_n * chunk // chunks, t_n * (chunk + 1) // chunks):
            q = t0 + t
            _gather_tile(s, q // (th * tw), h, wd, c, kind, p, na, (q // tw) % th * m - pt,
                         q % tw * m - pl, vf, t * c, plane, buf, tmp, c4)


@numba.njit(**_JIT)
def _scatter(mv, dst, threads, t0, m, th, tw):
    """Each tile's ``A x A`` points in mv -> its ``m x m`` cells of dst that lie inside it."""
    h, wd, k_n = dst.shape[1], dst.shape[2], dst.shape[3]
    na, t_n = m + 2, mv.shape[1]
    mf, d = mv.reshape(-1), dst.reshape(-1)
    plane = t_n * k_n
    chunks = min(threads, t_n)
    c4 = _consts(mv)
    # a static split of the tiles; each tile owns its m x m cells of dst
    for chunk in prange(chunks):
        buf = np.empty(m * _CB, mv.dtype)
        tmp = np.empty(m * na * _CB, mv.dtype)
        for t in range(t_n * chunk // chunks, t_n * (chunk + 1) // chunks):
            q = t0 + t
            _scatter_tile(mf, t * k_n, plane, m, na, d, q // (th * tw), h, wd, k_n,
                          (q // tw) % th * m, q % tw * m, buf, tmp, c4)
