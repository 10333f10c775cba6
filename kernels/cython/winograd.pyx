"""Winograd F(m x m, 3x3) tile transforms, m = 2, 3 or 4, NHWC (``kernels/README.md``, "Winograd
tiles").

Tiles of ``m x m`` output cells are numbered ``t = (n*th + ti)*tw + tj`` over the batch; a call
transforms the block of tiles ``[t0, t0 + T)``. Transform points (``A = m + 2`` per side) are
stored ``v[a*A + b, t, channel]``: one ``(T, channels)`` matrix per point, for the GEMMs.

- ``input_transform``: ``v = B^T d B`` of each tile's ``A x A`` input patch ``d`` (cells outside
  ``x`` are zeros);
- ``output_transform``: ``y = A^T M A`` into the tile's ``m x m`` output cells inside ``y``;
- ``output_transform_t``: its transpose, ``dm = A gy A^T`` (the weight gradient's side).
- ``forward``: all three per small block of tiles, with its own register-tiled GEMMs, in cache.
- ``weight_grad``: the input transform and ``output_transform_t`` per block of tiles, then the
  weight gradient's GEMMs, its own too, added to ``du``.

Each is two passes of 1-D transforms (hard-coded: Lavin & Gray's matrices for m = 2 and 4, the
points 0, 1, -1, 2 and infinity for m = 3) through a per-tile
buffer of at most 64 channels, in parallel over the tiles; the 1-D transforms run over the
contiguous channels and are compiled by GCC for AVX2+FMA (chosen at run time) and for the
build's baseline (``fc_isa.h``). The GEMMs come in two widths: AVX2's 32-byte vectors, and
AVX-512's 64-byte ones, run where the CPU has them (:data:`AVX512`). Tiles at the edges go
through a zero-filled (or cropped) copy.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

import math

import numpy as np

from fastconv.kernels import _checks
from fastconv.kernels.cython.threads import get_max_threads

cdef enum:
    CB = 64          # channels per pass through the tile buffers
    MAXA = 6         # the largest transform side (m = 4)

cdef extern from *:
    """
    #include "fc_isa.h"
    /* One 1-D transform of n channels: inputs d[i*ds + k], outputs o[r*os + k] (the rows of
       o never overlap the rows of d or each other: ivdep). kind = 3*stage + m - 2, stages:
       B^T (m+2 -> m+2), A^T (m+2 -> m), A (m -> m+2). m = 3 uses the points 0, 1, -1, 2. */
    #define FC_WG(T)                                                                         \\
    FC_CLONES static void fc_wg_##T(int kind, Py_ssize_t n, const T* restrict d,             \\
                                    Py_ssize_t ds, T* restrict o, Py_ssize_t os) {           \\
        Py_ssize_t k;                                                                       \\
        switch (kind) {                                                                     \\
        case 0:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                o[k] = d0 - d2; o[k + os] = d1 + d2;                                        \\
                o[k + 2 * os] = d2 - d1; o[k + 3 * os] = d1 - d3;                           \\
            }                                                                               \\
            break;                                                                          \\
        case 1:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                T d4 = d[k + 4 * ds], m31 = d3 - d1;                                        \\
                o[k] = 2 * (d0 - d2) + m31;                                                 \\
                o[k + os] = m31 - d1 - d2;                                                  \\
                o[k + 2 * os] = m31 + 3 * (d1 - d2);                                        \\
                o[k + 3 * os] = m31;                                                        \\
                o[k + 4 * os] = d4 - d2 - 2 * m31;                                          \\
            }                                                                               \\
            break;                                                                          \\
        case 2:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                T d4 = d[k + 4 * ds], d5 = d[k + 5 * ds];                                   \\
                T s12 = d1 + d2, m12 = d1 - d2, m13 = d1 - d3;                              \\
                T s34 = d3 + d4, m43 = d4 - d3, m42 = d4 - d2;                              \\
                o[k] = 4 * d0 - 5 * d2 + d4;                                                \\
                o[k + os] = s34 - 4 * s12;                                                  \\
                o[k + 2 * os] = m43 + 4 * m12;                                              \\
                o[k + 3 * os] = m42 - 2 * m13;                                              \\
                o[k + 4 * os] = m42 + 2 * m13;                                              \\
                o[k + 5 * os] = 4 * d1 - 5 * d3 + d5;                                       \\
            }                                                                               \\
            break;                                                                          \\
        case 3:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                o[k] = d0 + d1 + d2; o[k + os] = d1 - d2 - d3;                              \\
            }                                                                               \\
            break;                                                                          \\
        case 4:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                T d4 = d[k + 4 * ds], s12 = d1 + d2;                                        \\
                o[k] = d0 + s12 + d3;                                                       \\
                o[k + os] = d1 - d2 + 2 * d3;                                               \\
                o[k + 2 * os] = s12 + 4 * d3 + d4;                                          \\
            }                                                                               \\
            break;                                                                          \\
        case 5:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                T d4 = d[k + 4 * ds], d5 = d[k + 5 * ds];                                   \\
                T s12 = d1 + d2, m12 = d1 - d2, s34 = d3 + d4, m34 = d3 - d4;               \\
                o[k] = d0 + s12 + s34;                                                      \\
                o[k + os] = m12 + 2 * m34;                                                  \\
                o[k + 2 * os] = s12 + 4 * s34;                                              \\
                o[k + 3 * os] = m12 + 8 * m34 + d5;                                         \\
            }                                                                               \\
            break;                                                                          \\
        case 6:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds];                                                \\
                o[k] = d0; o[k + os] = d0 + d1; o[k + 2 * os] = d0 - d1; o[k + 3 * os] = -d1;\\
            }                                                                               \\
            break;                                                                          \\
        case 7:                                                                             \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], s02 = d0 + d2;             \\
                o[k] = d0; o[k + os] = s02 + d1; o[k + 2 * os] = s02 - d1;                  \\
                o[k + 3 * os] = d0 + 2 * d1 + 4 * d2; o[k + 4 * os] = d2;                   \\
            }                                                                               \\
            break;                                                                          \\
        default:                                                                            \\
            _Pragma("GCC ivdep")                                                            \\
            for (k = 0; k < n; k++) {                                                       \\
                T d0 = d[k], d1 = d[k + ds], d2 = d[k + 2 * ds], d3 = d[k + 3 * ds];        \\
                T s02 = d0 + d2, s13 = d1 + d3, f02 = d0 + 4 * d2, f13 = 2 * d1 + 8 * d3;   \\
                o[k] = d0; o[k + os] = s02 + s13; o[k + 2 * os] = s02 - s13;                \\
                o[k + 3 * os] = f02 + f13; o[k + 4 * os] = f02 - f13; o[k + 5 * os] = d3;   \\
            }                                                                               \\
        }                                                                                   \\
    }
    FC_WG(float)
    FC_WG(double)
    /* For each of np points p: mv[p] (R x K) = v[p] (R x C) @ u[p], R a multiple of 6, v[p]
       and mv[p] row-major (rows C and K apart, planes pv and pm apart); u[p] in panels of 2L
       columns, u[p, j, c, :] = columns 2L*j... of row c, zeros past K (``panels``). Each panel is
       a contiguous stream that stays in L1 while register tiles of 6 rows x 2L columns run down
       the rows. */
    #define FC_WMM(T, VB, ISA)                                                               \
    ISA static void fc_wmm_##T##_v##VB(Py_ssize_t np, Py_ssize_t R, Py_ssize_t C,           \
                                       Py_ssize_t K, const T* restrict v, Py_ssize_t pv,    \
                                       const T* restrict u, T* restrict mv, Py_ssize_t pm) { \
        typedef T V __attribute__((vector_size(VB)));                                       \
        enum { L = VB / sizeof(T) };                                                        \
        Py_ssize_t J = (K + 2 * L - 1) / (2 * L), p, j, r, c, i;                            \
        for (p = 0; p < np; p++)                                                            \
            for (j = 0; j < J; j++) {                                                       \
                const T* up = u + (p * J + j) * C * 2 * L;                                  \
                Py_ssize_t cols = K - 2 * L * j < 2 * L ? K - 2 * L * j : 2 * L;            \
                for (r = 0; r < R; r += 6) {                                                \
                    const T* vr = v + p * pv + r * C;                                       \
                    T* mr = mv + p * pm + r * K + 2 * L * j;                                \
                    V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0};           \
                    V b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0}, b4 = {0}, b5 = {0};           \
                    for (c = 0; c < C; c++) {                                               \
                        V u0, u1;                                                           \
                        memcpy(&u0, up + 2 * L * c, sizeof(V));                             \
                        memcpy(&u1, up + 2 * L * c + L, sizeof(V));                         \
                        T s0 = vr[c], s1 = vr[C + c], s2 = vr[2 * C + c];                   \
                        T s3 = vr[3 * C + c], s4 = vr[4 * C + c], s5 = vr[5 * C + c];       \
                        a0 += s0 * u0; b0 += s0 * u1; a1 += s1 * u0; b1 += s1 * u1;         \
                        a2 += s2 * u0; b2 += s2 * u1; a3 += s3 * u0; b3 += s3 * u1;         \
                        a4 += s4 * u0; b4 += s4 * u1; a5 += s5 * u0; b5 += s5 * u1;         \
                    }                                                                       \
                    V out[12] = {a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5};           \
                    for (i = 0; i < 6; i++)                                                 \
                        if (cols == 2 * L)                                                  \
                            memcpy(mr + i * K, &out[2 * i], 2 * sizeof(V));                 \
                        else                                                                \
                            memcpy(mr + i * K, &out[2 * i], cols * sizeof(T));              \
                }                                                                           \
            }                                                                               \
    }
    FC_WMM(float, 32, FC_CLONES)
    FC_WMM(double, 32, FC_CLONES)
    FC_WMM(float, 64, FC_WIDE)
    FC_WMM(double, 64, FC_WIDE)
    /* du (C x K, row-major) += v^T @ dm, v (R x C) and dm (R x K) row-major: v packed into
       vp as blocks of 6 columns, vp[c/6][t][c%6], dm into mp as panels of 2L columns,
       mp[k/2L][t][k%2L] (zeros past C and K), so that register tiles of 6 rows x 2L columns of
       du run down two contiguous streams over t, the 6-column block staying in L1 across the
       panels. vp and mp hold ceil(C/6)*6*R and ceil(K/2L)*2L*R elements. */
    #define FC_WDW(T, VB, ISA)                                                               \
    ISA static void fc_wdw_##T##_v##VB(Py_ssize_t R, Py_ssize_t C, Py_ssize_t K,            \
                                       const T* restrict v, const T* restrict dm,           \
                                       T* restrict du, T* restrict vp, T* restrict mp) {    \
        typedef T V __attribute__((vector_size(VB)));                                       \
        enum { L = VB / sizeof(T) };                                                        \
        Py_ssize_t c, k, t, i;                                                              \
        for (t = 0; t < R; t++) {                                                           \
            for (c = 0; c + 6 <= C; c += 6)                                                 \
                memcpy(vp + c * R + t * 6, v + t * C + c, 6 * sizeof(T));                   \
            for (k = 0; k + 2 * L <= K; k += 2 * L)                                         \
                memcpy(mp + k * R + t * 2 * L, dm + t * K + k, 2 * sizeof(V));              \
            if (c < C) {                                                                    \
                memset(vp + c * R + t * 6, 0, 6 * sizeof(T));                               \
                memcpy(vp + c * R + t * 6, v + t * C + c, (C - c) * sizeof(T));             \
            }                                                                               \
            if (k < K) {                                                                    \
                memset(mp + k * R + t * 2 * L, 0, 2 * sizeof(V));                           \
                memcpy(mp + k * R + t * 2 * L, dm + t * K + k, (K - k) * sizeof(T));        \
            }                                                                               \
        }                                                                                   \
        for (c = 0; c < C; c += 6)                                                          \
            for (k = 0; k < K; k += 2 * L) {                                                \
                Py_ssize_t rows = C - c < 6 ? C - c : 6;                                    \
                Py_ssize_t cols = K - k < 2 * L ? K - k : 2 * L;                            \
                const T* s = vp + c * R; const T* mr = mp + k * R;                          \
                T* d = du + c * K + k;                                                      \
                V o[12];                                                                    \
                if (rows == 6 && cols == 2 * L)                                             \
                    for (i = 0; i < 6; i++) memcpy(&o[2 * i], d + i * K, 2 * sizeof(V));    \
                else {                                                                      \
                    memset(o, 0, sizeof(o));                                                \
                    for (i = 0; i < rows; i++) memcpy(&o[2 * i], d + i * K, cols * sizeof(T)); \
                }                                                                           \
                V a0 = o[0], b0 = o[1], a1 = o[2], b1 = o[3], a2 = o[4], b2 = o[5];         \
                V a3 = o[6], b3 = o[7], a4 = o[8], b4 = o[9], a5 = o[10], b5 = o[11];       \
                for (t = 0; t < R; t++, s += 6, mr += 2 * L) {                              \
                    V m0, m1;                                                               \
                    memcpy(&m0, mr, sizeof(V));                                             \
                    memcpy(&m1, mr + L, sizeof(V));                                         \
                    a0 += s[0] * m0; b0 += s[0] * m1; a1 += s[1] * m0; b1 += s[1] * m1;     \
                    a2 += s[2] * m0; b2 += s[2] * m1; a3 += s[3] * m0; b3 += s[3] * m1;     \
                    a4 += s[4] * m0; b4 += s[4] * m1; a5 += s[5] * m0; b5 += s[5] * m1;     \
                }                                                                           \
                V out[12] = {a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5};               \
                if (rows == 6 && cols == 2 * L)                                             \
                    for (i = 0; i < 6; i++) memcpy(d + i * K, &out[2 * i], 2 * sizeof(V));  \
                else                                                                        \
                    for (i = 0; i < rows; i++) memcpy(d + i * K, &out[2 * i], cols * sizeof(T)); \
            }                                                                               \
    }
    FC_WDW(float, 32, FC_CLONES)
    FC_WDW(double, 32, FC_CLONES)
    FC_WDW(float, 64, FC_WIDE)
    FC_WDW(double, 64, FC_WIDE)
    """
    void fc_wg_float(int kind, Py_ssize_t n, const float* d, Py_ssize_t ds, float* o,
                     Py_ssize_t os) noexcept nogil
    void fc_wg_double(int kind, Py_ssize_t n, const double* d, Py_ssize_t ds, double* o,
                      Py_ssize_t os) noexcept nogil
    void fc_wmm_float_v32(Py_ssize_t npt, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const float* v,
                          Py_ssize_t pv, const float* u, float* mv, Py_ssize_t pm) noexcept nogil
    void fc_wmm_double_v32(Py_ssize_t npt, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K,
                           const double* v, Py_ssize_t pv, const double* u, double* mv,
                           Py_ssize_t pm) noexcept nogil
    void fc_wmm_float_v64(Py_ssize_t npt, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const float* v,
                          Py_ssize_t pv, const float* u, float* mv, Py_ssize_t pm) noexcept nogil
    void fc_wmm_double_v64(Py_ssize_t npt, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K,
                           const double* v, Py_ssize_t pv, const double* u, double* mv,
                           Py_ssize_t pm) noexcept nogil
    void fc_wdw_float_v32(Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const float* v,
                          const float* dm, float* du, float* vp, float* mp) noexcept nogil
    void fc_wdw_double_v32(Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const double* v,
                           const double* dm, double* du, double* vp, double* mp) noexcept nogil
    void fc_wdw_float_v64(Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const float* v,
                          const float* dm, float* du, float* vp, float* mp) noexcept nogil
    void fc_wdw_double_v64(Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const double* v,
                           const double* dm, double* du, double* vp, double* mp) noexcept nogil
    int fc_wide() noexcept nogil

AVX512 = bool(fc_wide())   # this CPU runs the 64-byte-vector GEMMs (panels of 128 bytes)
# the weight gradient's per-thread sums up to this many bytes in all (else shared points)
_OWN_BYTES = 2 << 20


def _lines(dtype, *shape):
    """C-contiguous zeros of ``shape`` with the last axis padded to whole cache lines (the
    kernels read only its first ``shape[-1]``), every row starting on a line (an unaligned
    NumPy buffer made every 64-byte load of the GEMMs' panels straddle two lines: mnist2's
    weight gradient ran 1.7x slower in the processes that got one)."""
    dtype = np.dtype(dtype)
    *lead, n = shape
    per_line = 64 // dtype.itemsize
    row = -(-n // per_line) * per_line
    count = row * math.prod(lead)
    buf = np.zeros(count * dtype.itemsize + 64, np.uint8)
    start = -buf.ctypes.data % 64
    return buf[start:start + count * dtype.itemsize].view(dtype).reshape(*lead, row)


def _panel_bytes(wide):
    """The GEMMs' panels of output channels: two vectors, of 64 bytes if ``wide`` (AVX-512)."""
    return 128 if wide else 64


def _wide(op, wide):
    """``wide`` (None: :data:`AVX512`) as a bool, refused where the CPU lacks AVX-512."""
    if wide is None:
        return AVX512
    if wide and not AVX512:
        raise ValueError(f"{op}: wide=True needs AVX-512 kernels, which this CPU or build lacks")
    return bool(wide)


def input_transform(x, v, t0, m, th, tw, pt, pl):
    """``v[:, t]`` = ``B^T d B`` of tile ``t0 + t``'s ``(m+2) x (m+2)`` patch ``d`` of x, from row
    ``ti*m - pt``, column ``tj*m - pl`` (either may be negative) of image ``n``.

    x ``(N, H, W, C)``; v ``((m+2)^2, T, C)`` (overwritten); a ``th x tw`` tile grid per image.
    """
    op = "winograd.input_transform"
    _checks.arrays(op, {"x": (x, 4)}, {"v": (v, 3)})
    t0, m, th, tw, pt, pl = _checks.winograd_tiles(op, x, v, t0, m, th, tw, pt, pl)
    _gather(x, v, t0, m, th, tw, pt, pl, m + 2, m - 2)


def output_transform_t(gy, dm, t0, m):
    """``dm[:, t]`` = ``A g A^T`` of tile ``t0 + t``'s ``m x m`` cells ``g`` of gy (zeros past
    its edges): the transpose of :func:`output_transform`, the grid ``ceil(OH/m) x ceil(OW/m)``.

    gy ``(N, OH, OW, K)``; dm ``((m+2)^2, T, K)`` (overwritten).
    """
    op = "winograd.output_transform_t"
    _checks.arrays(op, {"gy": (gy, 4)}, {"dm": (dm, 3)})
    th, tw = _checks.winograd_grid(op, gy, m)
    t0, m, th, tw, _, _ = _checks.winograd_tiles(op, gy, dm, t0, m, th, tw, 0, 0)
    _gather(gy, dm, t0, m, th, tw, 0, 0, m, m + 4)


def output_transform(mv, y, t0, m):
    """Tile ``t0 + t``'s ``m x m`` cells of y (those inside y: overwritten) = ``A^T M A`` of
    ``M = mv[:, t]``, the grid ``ceil(OH/m) x ceil(OW/m)``.

    mv ``((m+2)^2, T, K)``; y ``(N, OH, OW, K)``.
    """
    op = "winograd.output_transform"
    _checks.arrays(op, {"mv": (mv, 3)}, {"y": (y, 4)})
    th, tw = _checks.winograd_grid(op, y, m)
    t0, m, th, tw, _, _ = _checks.winograd_tiles(op, y, mv, t0, m, th, tw, 0, 0)
    _scatter(mv, y, t0, m, th, tw)


def panels(w, wide=None):
    """``w (..., C, K)`` with its columns cut into panels of ``P`` = 64 bytes (128 if ``wide``,
    by default where the CPU has AVX-512) / itemsize, one register tile's width, zeros past K:
    ``(..., ceil(K/P), C, P)``, the layout of :func:`forward`'s u, where each panel is one
    contiguous stream for the GEMMs."""
    P = _panel_bytes(_wide("winograd.panels", wide)) // w.itemsize
    *lead, c, k = w.shape
    full = k // P
    out = _lines(w.dtype, *lead, -(-k // P), c, P)
    out[..., :full, :, :] = np.swapaxes(w[..., :full * P].reshape(*lead, c, full, P), -2, -3)
    out[..., full:, :, :k - full * P] = w[..., None, :, full * P:]
    return out


def forward(x, u, y, t0, T, m, pt, pl, block=6):
    """Tiles ``[t0, t0 + T)`` of y (their cells inside y: overwritten) = the Winograd
    correlation of x with the transformed weights u: per block of ``block`` tiles (rounded up to
    6), :func:`input_transform`, one GEMM per point, :func:`output_transform`, all in cache.

    x ``(N, H, W, C)``, tile patches from row ``ti*m - pt``, column ``tj*m - pl``; u
    ``((m+2)^2, ceil(K/P), C, P)``, the :func:`panels` of the ``((m+2)^2, C, K)`` transformed
    weights (their width picks the GEMMs: 128-byte panels run the AVX-512 ones); y ``(N, OH,
    OW, K)``, the grid ``ceil(OH/m) x ceil(OW/m)``.
    """
    op = "winograd.forward"
    _checks.arrays(op, {"x": (x, 4), "u": (u, 4)}, {"y": (y, 4)})
    wide = _wide(op, u.shape[3] * u.itemsize == _panel_bytes(True))
    t0, T, m, th, tw, pt, pl, block = _checks.winograd_blocks(op, x, u, y, t0, T, m, pt, pl,
                                                              block, _panel_bytes(wide))
    if T == 0 or y.shape[3] == 0:
        return
    threads, r = max(1, get_max_threads()), (block + 5) // 6 * 6
    # zeros: the rows past a short last block stay finite (their products are dropped)
    vs = _lines(x.dtype, threads, (m + 2) ** 2 * r * x.shape[3] + 1)
    ms = _lines(x.dtype, threads, (m + 2) ** 2 * r * y.shape[3])
    _forward(x, u, y, t0, T, m, th, tw, pt, pl, vs, ms, wide)


def weight_grad(x, gy, du, t0, T, m, pt, pl, block=144, wide=None):
    """``du[p] +=`` the sum over tiles ``[t0, t0 + T)`` of ``v[p]^T dm[p]``: the input
    transform of x's patches (as :func:`input_transform`) against the transposed output
    transform of gy's cells (as :func:`output_transform_t`), per block of ``block`` tiles in
    cache, with its own register-tiled GEMMs. Where every thread's copy of du fits in
    ``_OWN_BYTES``, each thread runs one range of the tiles into its own sums, added to du in a
    fixed order, so that no thread reads the transforms another wrote (mnist2's weight gradient
    ran 1.1-2.2x slower sharing them, by where the host put the threads); otherwise the threads
    share each block's transforms, then its points, each point's du owned by one thread.

    x ``(N, H, W, C)``; gy ``(N, OH, OW, K)``, the grid ``ceil(OH/m) x ceil(OW/m)``; du
    ``((m+2)^2, C, K)``, added to. wide: the AVX-512 GEMMs (None: where the CPU has them).
    """
    op = "winograd.weight_grad"
    wide = _wide(op, wide)
    _checks.arrays(op, {"x": (x, 4), "gy": (gy, 4)}, {"du": (du, 3)})
    t0, T, m, th, tw, pt, pl, block = _checks.winograd_blocks(op, x, du, gy, t0, T, m, pt, pl,
                                                              block)
    c, k, r = x.shape[3], gy.shape[3], min(block, T)
    if T == 0 or c == 0 or k == 0:
        return
    threads, a2 = max(1, get_max_threads()), (m + 2) ** 2
    lanes = _panel_bytes(wide) // x.itemsize
    own = 1 < threads and threads * du.nbytes <= _OWN_BYTES
    # the transforms of a block (per thread if own), each thread's packed copies of one point's
    # (fc_wdw), and if own each thread's sums
    v = _lines(x.dtype, threads if own else 1, a2 * r * c)
    dm = _lines(x.dtype, threads if own else 1, a2 * r * k)
    vp = _lines(x.dtype, threads, -(-c // 6) * 6 * r)
    mp = _lines(x.dtype, threads, -(-k // lanes) * lanes * r)
    parts = _lines(x.dtype, threads if own else 0, a2 * c * k)
    _weight_grad(x, gy, du, t0, T, m, th, tw, pt, pl, r, v, dm, vp, mp, parts, own, wide)
    if own:
        du += parts[:, :a2 * c * k].sum(axis=0).reshape(du.shape)


# ------------------------------------------------------------------------------------ kernels
cdef inline void _tf(int kind, Py_ssize_t n, const floating* d, Py_ssize_t ds, floating* o,
                     Py_ssize_t os) noexcept nogil:
    if floating is float:
        fc_wg_float(kind, n, d, ds, o, os)
    else:
        fc_wg_double(kind, n, d, ds, o, os)


cdef inline void _wmm(bint wide, Py_ssize_t npt, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K,
                      const floating* v, Py_ssize_t pv, const floating* u, floating* mv,
                      Py_ssize_t pm) noexcept nogil:
    if floating is float:
        (fc_wmm_float_v64 if wide else fc_wmm_float_v32)(npt, R, C, K, v, pv, u, mv, pm)
    else:
        (fc_wmm_double_v64 if wide else fc_wmm_double_v32)(npt, R, C, K, v, pv, u, mv, pm)


cdef inline void _wdw(bint wide, Py_ssize_t R, Py_ssize_t C, Py_ssize_t K, const floating* v,
                      const floating* dm, floating* du, floating* vp,
                      floating* mp) noexcept nogil:
    if floating is float:
        (fc_wdw_float_v64 if wide else fc_wdw_float_v32)(R, C, K, v, dm, du, vp, mp)
    else:
        (fc_wdw_double_v64 if wide else fc_wdw_double_v32)(R, C, K, v, dm, du, vp, mp)


cdef void _gather_tile(const floating* src, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                       int kind, Py_ssize_t P, Py_ssize_t A, Py_ssize_t r0, Py_ssize_t q0,
                       floating* v, Py_ssize_t plane) noexcept nogil:
    """One tile: the ``P x P`` patch of image ``src`` at ``(r0, q0)`` -> ``A x A`` points at
    ``v`` (= ``&v[0, t, 0]``), ``plane`` apart."""
    cdef floating buf[MAXA * MAXA * CB]
    cdef floating tmp[MAXA * MAXA * CB]
    cdef bint inside = r0 >= 0 and q0 >= 0 and r0 + P <= H and q0 + P <= W
    cdef Py_ssize_t j0 = max(0, -q0), j1 = max(j0, min(P, W - q0))
    cdef Py_ssize_t ci, c0, cb, i, j, a
    for ci in range((C + CB - 1) // CB):
        c0 = ci * CB
        cb = min(CB, C - c0)       # buf and tmp: cells cb apart (one copy per row if cb == C)
        if not inside:              # buf[i, j] = the patch, zeros outside src
            for i in range(P):
                if not 0 <= r0 + i < H:
                    memset(buf + i * P * cb, 0, P * cb * sizeof(floating))
                    continue
                memset(buf + i * P * cb, 0, j0 * cb * sizeof(floating))
                if cb == C:
                    memcpy(buf + (i * P + j0) * cb, src + ((r0 + i) * W + q0 + j0) * C,
                           (j1 - j0) * C * sizeof(floating))
                else:
                    for j in range(j0, j1):
                        memcpy(buf + (i * P + j) * cb, src + ((r0 + i) * W + q0 + j) * C + c0,
                               cb * sizeof(floating))
                memset(buf + (i * P + j1) * cb, 0, (P - j1) * cb * sizeof(floating))
        # columns j: tmp[a, j] = (M d)[a, j]
        for j in range(P):
            if inside:
                _tf(kind, cb, src + (r0 * W + q0 + j) * C + c0, W * C, tmp + j * cb, P * cb)
            else:
                _tf(kind, cb, buf + j * cb, P * cb, tmp + j * cb, P * cb)
        # rows a: v[a*A + b] = (tmp M^T)[a, b]
        for a in range(A):
            _tf(kind, cb, tmp + a * P * cb, cb, v + a * A * plane + c0, plane)


cdef void _scatter_tile(const floating* mv, Py_ssize_t plane, Py_ssize_t m, Py_ssize_t A,
                        floating* dst, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t r0,
                        Py_ssize_t q0) noexcept nogil:
    """One tile: ``A x A`` points at ``mv`` (= ``&mv[0, t, 0]``) -> the ``m x m`` cells of image
    ``dst`` at ``(r0, q0)`` that lie inside it."""
    cdef floating buf[MAXA * CB]
    cdef floating tmp[MAXA * MAXA * CB]
    cdef int kind = m + 1
    cdef Py_ssize_t pn = min(m, H - r0), qn = min(m, W - q0)
    cdef Py_ssize_t ki, k0, kb, b, p, q
    for ki in range((K + CB - 1) // CB):
        k0 = ki * CB
        kb = min(CB, K - k0)
        # columns b: tmp[p, b] = (A^T M)[p, b]
        for b in range(A):
            _tf(kind, kb, mv + b * plane + k0, A * plane, tmp + b * CB, A * CB)
        # rows p: dst[r0 + p, q0 + q] = (tmp A)[p, q]
        for p in range(pn):
            if qn == m:
                _tf(kind, kb, tmp + p * A * CB, CB, dst + ((r0 + p) * W + q0) * K + k0, K)
            else:
                _tf(kind, kb, tmp + p * A * CB, CB, buf, CB)
                for q in range(qn):
                    memcpy(dst + ((r0 + p) * W + q0 + q) * K + k0, buf + q * CB,
                           kb * sizeof(floating))


def _gather(const floating[:, :, :, ::1] src, floating[:, :, ::1] v, Py_ssize_t t0,
            Py_ssize_t m, Py_ssize_t th, Py_ssize_t tw, Py_ssize_t pt, Py_ssize_t pl,
            Py_ssize_t P, int kind):
    cdef Py_ssize_t H = src.shape[1], W = src.shape[2], C = src.shape[3], T = v.shape[1]
    cdef Py_ssize_t A = m + 2, t, q, n
    if T == 0 or C == 0:
        return
    with nogil:
        # each tile owns its column v[:, t]
        for t in prange(T, schedule="static"):
            q = t0 + t
            n = q // (th * tw)
            _gather_tile(&src[n, 0, 0, 0], H, W, C, kind, P, A, (q // tw) % th * m - pt,
                         q % tw * m - pl, &v[0, t, 0], T * C)


def _scatter(const floating[:, :, ::1] mv, floating[:, :, :, ::1] dst, Py_ssize_t t0,
             Py_ssize_t m, Py_ssize_t th, Py_ssize_t tw):
    cdef Py_ssize_t H = dst.shape[1], W = dst.shape[2], K = dst.shape[3], T = mv.shape[1]
    cdef Py_ssize_t t, q, n
    if T == 0 or K == 0:
        return
    with nogil:
        # each tile owns its m x m cells of dst
        for t in prange(T, schedule="static"):
            q = t0 + t
            n = q // (th * tw)
            _scatter_tile(&mv[0, t, 0], T * K, m, m + 2, &dst[n, 0, 0, 0], H, W, K,
                          (q // tw) % th * m, q % tw * m)


def _forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] u,
             floating[:, :, :, ::1] y, Py_ssize_t t0, Py_ssize_t T, Py_ssize_t m, Py_ssize_t th,
             Py_ssize_t tw, Py_ssize_t pt, Py_ssize_t pl, floating[:, ::1] vs,
             floating[:, ::1] ms, bint wide):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], K = y.shape[3]
    cdef Py_ssize_t OH = y.shape[1], OW = y.shape[2], A = m + 2
    cdef Py_ssize_t R = ms.shape[1] // (A * A * K), nb = (T + R - 1) // R
    cdef Py_ssize_t b, i, q, cnt
    cdef floating* v
    cdef floating* mv
    # no input cells or channels: the gathers read nothing, the GEMMs no u
    cdef const floating* xb = &x[0, 0, 0, 0] if x.size else NULL
    cdef const floating* ub = &u[0, 0, 0, 0] if u.size else NULL
    with nogil:
        # each block owns its tiles' cells of y; each thread its workspaces vs, ms
        for b in prange(nb, schedule="static", num_threads=vs.shape[0]):
            v = &vs[threadid(), 0]
            mv = &ms[threadid(), 0]
            cnt = min(R, T - b * R)
            for i in range(cnt):
                q = t0 + b * R + i
                _gather_tile(xb + q // (th * tw) * H * W * C, H, W, C, m - 2, A, A,
                             (q // tw) % th * m - pt, q % tw * m - pl, v + i * C, R * C)
            _wmm(wide, A * A, (cnt + 5) // 6 * 6, C, K, v, R * C, ub, mv, R * K)
            for i in range(cnt):
                q = t0 + b * R + i
                _scatter_tile(mv + i * K, R * K, m, A, &y[q // (th * tw), 0, 0, 0], OH, OW, K,
                              (q // tw) % th * m, q % tw * m)


cdef inline void _gather_pair(const floating* xb, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                              const floating* gb, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t K,
                              Py_ssize_t q, Py_ssize_t m, Py_ssize_t th, Py_ssize_t tw,
                              Py_ssize_t pt, Py_ssize_t pl, floating* v, floating* dm,
                              Py_ssize_t cnt) noexcept nogil:
    """Tile q of the weight gradient: the input transform of its patch of x (images ``H x W x
    C`` at ``xb``) into v, the transposed output transform of its cells of gy (``OH x OW x K`` at
    ``gb``) into dm; in both the points are ``cnt`` rows apart."""
    cdef Py_ssize_t n = q // (th * tw), A = m + 2, r0 = (q // tw) % th * m, q0 = q % tw * m
    _gather_tile(xb + n * H * W * C, H, W, C, m - 2, A, A, r0 - pt, q0 - pl, v, cnt * C)
    _gather_tile(gb + n * OH * OW * K, OH, OW, K, m + 4, m, A, r0, q0, dm, cnt * K)


def _weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                 floating[:, :, ::1] du, Py_ssize_t t0, Py_ssize_t T, Py_ssize_t m,
                 Py_ssize_t th, Py_ssize_t tw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t R,
                 floating[:, ::1] v, floating[:, ::1] dm, floating[:, ::1] vp,
                 floating[:, ::1] mp, floating[:, ::1] parts, bint own, bint wide):
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], K = gy.shape[3]
    cdef Py_ssize_t OH = gy.shape[1], OW = gy.shape[2], A = m + 2, nt = vp.shape[0]
    cdef Py_ssize_t j, tid, lo, hi, b, i, p, q, cnt
    cdef floating* vt
    cdef floating* dt
    # no input cells: the gathers read nothing (T > 0: gy has cells)
    cdef const floating* xb = &x[0, 0, 0, 0] if x.size else NULL
    cdef const floating* gb = &gy[0, 0, 0, 0]
    if not own:
        with nogil:
            b = 0
            while b < T:
                cnt = min(R, T - b)
                # each tile owns its rows of v and dm
                for i in prange(cnt, schedule="static", num_threads=nt):
                    q = t0 + b + i
                    _gather_pair(xb, H, W, C, gb, OH, OW, K, q, m, th, tw, pt, pl, &v[0, i * C],
                                 &dm[0, i * K], cnt)
                # each point owns du[p]; each thread its packing buffers
                for p in prange(A * A, schedule="static", num_threads=nt):
                    _wdw(wide, cnt, C, K, &v[0, p * cnt * C], &dm[0, p * cnt * K], &du[p, 0, 0],
                         &vp[threadid(), 0], &mp[threadid(), 0])
                b = b + cnt
        return
    with nogil:
        # range j of the tiles, in blocks of R, into the sums of the thread that runs it
        for j in prange(nt, schedule="static", num_threads=nt):
            tid = threadid()
            vt = &v[tid, 0]
            dt = &dm[tid, 0]
            lo = T * j // nt
            hi = T * (j + 1) // nt
            b = lo
            while b < hi:
                cnt = min(R, hi - b)
                for i in range(cnt):
                    q = t0 + b + i
                    _gather_pair(xb, H, W, C, gb, OH, OW, K, q, m, th, tw, pt, pl, vt + i * C,
                                 dt + i * K, cnt)
                for p in range(A * A):
                    _wdw(wide, cnt, C, K, vt + p * cnt * C, dt + p * cnt * K,
                         &parts[tid, p * C * K], &vp[tid, 0], &mp[tid, 0])
                b = b + cnt
