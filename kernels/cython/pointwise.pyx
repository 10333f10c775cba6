"""1x1 convolution without padding, NHWC activations x HWIO weights (``kernels/README.md``).

A 1x1 convolution is a GEMM over the pixels, ``y[p] = x[p] @ w``; with few outputs per group
BLAS packs the big operand and spends its time there, while the job is bound by reading ``x``.
These kernels read each pixel once: a register tile of 6 pixels x one block of ``2L`` outputs
(``L`` lanes of a 32-byte vector: 16 float32 / 8 float64) sums the products of one broadcast
input value and one row of the block's packed weights per step, then stores once (the bias is
the start value, ReLU is applied in the store). The input gradient is the same product with the
weights transposed (``gx[p] = gy[p] @ w^T``); the weight gradient keeps 6 input channels x one
output block in registers over a chunk of pixels and adds them to the thread's partial sum.
Each tile prefetches the next tile's lines of its source and destination (the weight gradient:
the next line of each pixel of x), which the hardware prefetchers miss across many rows: 1.4-1.7x
on one thread.

Pixels run in tasks of ``_CHUNK`` (stride 1: the whole batch is one row of pixels) or of one
output row (strides > 1), split statically over the threads: the same bits on every call. With
GCC on x86-64 the loops are compiled twice, for AVX2+FMA (chosen at run time) and the baseline.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset

from fastconv.kernels.cython.threads import get_max_threads
from fastconv.kernels import _checks

cdef extern from *:
    """
    #include "fc_isa.h"
    #define FC_INLINE static inline __attribute__((always_inline))
    typedef float fc_vf __attribute__((vector_size(32), aligned(4), may_alias));
    typedef double fc_vd __attribute__((vector_size(32), aligned(8), may_alias));
    typedef int fc_if __attribute__((vector_size(32), aligned(4), may_alias));
    typedef long long fc_id __attribute__((vector_size(32), aligned(8), may_alias));
    #define FC_P 6   /* pixels (or input channels) per register tile */

    #define FC_PW(T, V, I)                                                                    \\
    /* d[p*ds + i] = act(b[i] + sum_k s[p*ss + k] * wb[k*2L + i]), p < P, i < width */          \\
    FC_INLINE void fc_tile_##T(const int P, const T* s, Py_ssize_t ss, Py_ssize_t K,           \\
                               const T* wb, const T* b, int relu, T* d, Py_ssize_t ds,         \\
                               Py_ssize_t width) {                                             \\
        enum { L = sizeof(V) / sizeof(T) };                                                    \\
        V a0[FC_P], a1[FC_P], b0 = {0}, b1 = {0};                                              \\
        if (b) { b0 = *(const V*)b; b1 = *(const V*)(b + L); }                                 \\
        _Pragma("GCC unroll 6") for (int p = 0; p < P; p++) { a0[p] = b0; a1[p] = b1; }        \\
        _Pragma("GCC unroll 6") for (int p = 0; p < P; p++)   /* the next tile's lines of d */ \\
            __builtin_prefetch(d + (P + p) * ds, 1, 3);                                        \\
        for (Py_ssize_t k = 0; k < K; k++) {                                                   \\
            const V w0 = *(const V*)(wb + 2 * L * k), w1 = *(const V*)(wb + 2 * L * k + L);    \\
            if ((k & (64 / sizeof(T) - 1)) == 0)   /* the next tile's lines of s */             \\
                _Pragma("GCC unroll 6") for (int p = 0; p < P; p++)                            \\
                    __builtin_prefetch(s + (P + p) * ss + k, 0, 3);                            \\
            _Pragma("GCC unroll 6") for (int p = 0; p < P; p++) {                              \\
                const T v = s[p * ss + k];                                                     \\
                a0[p] += v * w0;                                                               \\
                a1[p] += v * w1;                                                               \\
            }                                                                                  \\
        }                                                                                      \\
        _Pragma("GCC unroll 6") for (int p = 0; p < P; p++) {                                  \\
            if (relu) {   /* v < 0 -> 0; NaN and -0 kept, as epilogue.bias_act */              \\
                a0[p] = (V)((I)a0[p] & ~(a0[p] < (V){0}));                                     \\
                a1[p] = (V)((I)a1[p] & ~(a1[p] < (V){0}));                                     \\
            }                                                                                  \\
            if (width == 2 * L) {                                                              \\
                *(V*)(d + p * ds) = a0[p];                                                     \\
                *(V*)(d + p * ds + L) = a1[p];                                                 \\
            } else {                                                                           \\
                T t[2 * L];                                                                    \\
                *(V*)t = a0[p];                                                                \\
                *(V*)(t + L) = a1[p];                                                          \\
                for (Py_ssize_t i = 0; i < width; i++) d[p * ds + i] = t[i];                   \\
            }                                                                                  \\
        }                                                                                      \\
    }                                                                                          \\
    /* n pixels: d[p*ds + g*M + j] = act(b + sum_k s[p*ss + g*K + k] * w[g][j][k]) for each  \\
       group g < G and output j < M, the weights packed as wp[G][NB][K][2L] (bp[G][NB][2L]) */ \\
    FC_CLONES static void fc_pw_##T(Py_ssize_t n, const T* s, Py_ssize_t ss, T* d,             \\
                                    Py_ssize_t ds, Py_ssize_t K, Py_ssize_t G, Py_ssize_t NB,  \\
                                    Py_ssize_t M, const T* wp, const T* bp, int relu) {        \\
        enum { L = sizeof(V) / sizeof(T) };                                                    \\
        for (Py_ssize_t p = 0; p < n; p += FC_P) {                                             \\
            const int P = n - p < FC_P ? n - p : FC_P;                                         \\
            for (Py_ssize_t g = 0; g < G; g++)                                                 \\
                for (Py_ssize_t ob = 0; ob < NB; ob++) {                                       \\
                    const Py_ssize_t blk = g * NB + ob, j = ob * 2 * L;                        \\
                    const Py_ssize_t width = M - j < 2 * L ? M - j : 2 * L;                    \\
                    const T* sp = s + p * ss + g * K;                                          \\
                    const T* wb = wp + blk * K * 2 * L;                                        \\
                    const T* b = bp ? bp + blk * 2 * L : 0;                                    \\
                    T* dp = d + p * ds + g * M + j;                                            \\
                    switch (P) {                                                               \\
                    case 6: fc_tile_##T(6, sp, ss, K, wb, b, relu, dp, ds, width); break;      \\
                    case 5: fc_tile_##T(5, sp, ss, K, wb, b, relu, dp, ds, width); break;      \\
                    case 4: fc_tile_##T(4, sp, ss, K, wb, b, relu, dp, ds, width); break;      \\
                    case 3: fc_tile_##T(3, sp, ss, K, wb, b, relu, dp, ds, width); break;      \\
                    case 2: fc_tile_##T(2, sp, ss, K, wb, b, relu, dp, ds, width); break;      \\
                    default: fc_tile_##T(1, sp, ss, K, wb, b, relu, dp, ds, width);            \\
                    }                                                                          \\
                }                                                                              \\
        }                                                                                      \\
    }                                                                                          \\
    /* acc[c][i] += sum_{p<n} x[p*xs + c] * dy[p*dys + i], c < P, i < 2L */                    \\
    FC_INLINE void fc_wtile_##T(const int P, Py_ssize_t n, const T* x, Py_ssize_t xs,          \\
                                const T* dy, Py_ssize_t dys, T* acc, Py_ssize_t as) {          \\
        enum { L = sizeof(V) / sizeof(T) };                                                    \\
        V a0[FC_P], a1[FC_P];                                                                  \\
        _Pragma("GCC unroll 6") for (int c = 0; c < P; c++) { a0[c] = (V){0}; a1[c] = a0[c]; } \\
        for (Py_ssize_t p = 0; p < n; p++) {                                                   \\
            __builtin_prefetch(x + p * xs + 64 / sizeof(T), 0, 3);   /* the next line of x */ \\
            const V d0 = *(const V*)(dy + p * dys), d1 = *(const V*)(dy + p * dys + L);        \\
            _Pragma("GCC unroll 6") for (int c = 0; c < P; c++) {                              \\
                const T v = x[p * xs + c];                                                     \\
                a0[c] += v * d0;                                                               \\
                a1[c] += v * d1;                                                               \\
            }                                                                                  \\
        }                                                                                      \\
        _Pragma("GCC unroll 6") for (int c = 0; c < P; c++) {                                  \\
            *(V*)(acc + c * as) += a0[c];                                                      \\
            *(V*)(acc + c * as + L) += a1[c];                                                  \\
        }                                                                                      \\
    }                                                                                          \\
    /* n pixels: acc[g][c][ob*2L + i] += sum_p x[p*xs + g*Cg + c] * dy[p*dys + blk*2L + i],   \\
       blk = g*NB + ob (dy padded to whole blocks per group), acc's rows Cg + 1 apart; bias:   \\
       also acc[g][Cg][ob*2L + i] += sum_p dy[p*dys + blk*2L + i] (the bias gradient) */       \\
    FC_CLONES static void fc_pw_w_##T(Py_ssize_t n, const T* x, Py_ssize_t xs, const T* dy,    \\
                                      Py_ssize_t dys, Py_ssize_t Cg, Py_ssize_t G,             \\
                                      Py_ssize_t NB, T* acc, int bias) {                       \\
        enum { L = sizeof(V) / sizeof(T) };                                                    \\
        const Py_ssize_t as = NB * 2 * L;                                                      \\
        for (Py_ssize_t g = 0; g < G; g++)                                                     \\
            for (Py_ssize_t ob = 0; ob < NB; ob++) {                                           \\
                if (bias) {   /* the block of dy, in L1 for the tiles that follow */           \\
                    const T* dp = dy + (g * NB + ob) * 2 * L;                                  \\
                    V s0 = {0}, s1 = {0};                                                      \\
                    for (Py_ssize_t p = 0; p < n; p++) {                                       \\
                        s0 += *(const V*)(dp + p * dys);                                       \\
                        s1 += *(const V*)(dp + p * dys + L);                                   \\
                    }                                                                          \\
                    T* bp = acc + (g * (Cg + 1) + Cg) * as + ob * 2 * L;                       \\
                    *(V*)bp += s0;                                                             \\
                    *(V*)(bp + L) += s1;                                                       \\
                }                                                                              \\
                for (Py_ssize_t c = 0; c < Cg; c += FC_P) {                                    \\
                    const int P = Cg - c < FC_P ? Cg - c : FC_P;                               \\
                    const T* xp = x + g * Cg + c;                                              \\
                    const T* dp = dy + (g * NB + ob) * 2 * L;                                  \\
                    T* ap = acc + (g * (Cg + 1) + c) * as + ob * 2 * L;                        \\
                    switch (P) {                                                               \\
                    case 6: fc_wtile_##T(6, n, xp, xs, dp, dys, ap, as); break;                \\
                    case 5: fc_wtile_##T(5, n, xp, xs, dp, dys, ap, as); break;                \\
                    case 4: fc_wtile_##T(4, n, xp, xs, dp, dys, ap, as); break;                \\
                    case 3: fc_wtile_##T(3, n, xp, xs, dp, dys, ap, as); break;                \\
                    case 2: fc_wtile_##T(2, n, xp, xs, dp, dys, ap, as); break;                \\
                    default: fc_wtile_##T(1, n, xp, xs, dp, dys, ap, as);                      \\
                    }                                                                          \\
                }                                                                              \\
            }                                                                                  \\
    }
    FC_PW(float, fc_vf, fc_if)
    FC_PW(double, fc_vd, fc_id)
    """
    void fc_pw_float(Py_ssize_t n, const float* s, Py_ssize_t ss, float* d, Py_ssize_t ds,
                     Py_ssize_t K, Py_ssize_t G, Py_ssize_t NB, Py_ssize_t M, const float* wp,
                     const float* bp, int relu) noexcept nogil
    void fc_pw_double(Py_ssize_t n, const double* s, Py_ssize_t ss, double* d, Py_ssize_t ds,
                      Py_ssize_t K, Py_ssize_t G, Py_ssize_t NB, Py_ssize_t M, const double* wp,
                      const double* bp, int relu) noexcept nogil
    void fc_pw_w_float(Py_ssize_t n, const float* x, Py_ssize_t xs, const float* dy,
                       Py_ssize_t dys, Py_ssize_t Cg, Py_ssize_t G, Py_ssize_t NB,
                       float* acc, int bias) noexcept nogil
    void fc_pw_w_double(Py_ssize_t n, const double* x, Py_ssize_t xs, const double* dy,
                        Py_ssize_t dys, Py_ssize_t Cg, Py_ssize_t G, Py_ssize_t NB,
                        double* acc, int bias) noexcept nogil

# pixels per task at stride 1: the forward's a multiple of the 6-pixel tile; the weight
# gradient's so that the chunk of x stays in L1 across its passes
cdef Py_ssize_t _CHUNK = 48, _WCHUNK = 32
MAX_OUTPUTS = 96   # outputs per group up to which fastconv's 1x1 algorithm runs these kernels
#                    (measured: 1.1-1.6x the GEMM path up to 96, even at 128)


def _block(dtype):
    """Outputs per register block: two 32-byte vectors."""
    return 64 // np.dtype(dtype).itemsize


def _pack(wg, block):
    """Per-group weights ``wg[G, K, M]`` as ``[G][NB][K][block]``, zero-padded past ``M``."""
    g, k, m = wg.shape
    nb = -(-m // block)
    p = np.zeros((g, k, nb * block), wg.dtype)
    p[:, :, :m] = wg
    return np.ascontiguousarray(p.reshape(g, k, nb, block).transpose(0, 2, 1, 3)), nb


def _by_group(w, groups):
    """``w[0, 0]`` ``(Cg, O)`` as ``(G, Cg, Og)``."""
    return w[0, 0].reshape(w.shape[2], groups, -1).transpose(1, 0, 2)


def forward(x, w, y, sh, sw, groups, b=None, relu=False):
    """``y[n, i, j] = act(x[n, i*sh, j*sw] @ w[0, 0] + b)`` per group (ReLU when ``relu``).

    x ``(N, H, W, C)``, w ``(1, 1, C // groups, O)``, y ``(N, ceil(H/sh), ceil(W/sw), O)``
    (overwritten), b ``(O,)`` or None.
    """
    op = "pointwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    sh, sw, groups = _checks.pointwise(op, x, w, y, "x", "y", sh, sw, groups)
    _checks.bias(op, b, y)
    if not y.size:
        return
    blk = _block(x.dtype)
    wp, nb = _pack(_by_group(w, groups), blk)
    bp = None if b is None else _pack(b.reshape(groups, 1, -1), blk)[0]
    _run(x, y, x.shape[3] // groups, y.shape[3] // groups, groups, nb, wp, bp, bool(relu), sh,
         sw, False)


def backward_input(gy, w, gx, sh, sw, groups):
    """Gradient of :func:`forward` (without its epilogue) with respect to x, into ``gx``
    ``(N, H, W, C)`` (overwritten: zeros at the pixels no output reads)."""
    op = "pointwise.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    sh, sw, groups = _checks.pointwise(op, gx, w, gy, "gx", "gy", sh, sw, groups)
    if not gx.size:
        return
    if not gy.shape[3]:
        gx[...] = 0
        return
    blk = _block(gx.dtype)
    wp, nb = _pack(_by_group(w, groups).transpose(0, 2, 1), blk)    # w^T: K = Og, M = Cg
    _run(gy, gx, gy.shape[3] // groups, gx.shape[3] // groups, groups, nb, wp, None, False, sh,
         sw, True)


def backward_weight(gy, x, gw, sh, sw, groups, gb=None):
    """Gradient of :func:`forward` (without its epilogue) with respect to w, into ``gw``
    ``(1, 1, C // groups, O)``, and the bias's, ``gy`` summed over its pixels, into ``gb``
    ``(O,)`` unless None, from the same pass over gy: per-thread partial sums over static pixel
    ranges, added in a fixed order."""
    op = "pointwise.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    sh, sw, groups = _checks.pointwise(op, x, gw, gy, "x", "gy", sh, sw, groups)
    bias = _checks.bias_grad(op, gb, gy)
    cg, o = gw.shape[2], gw.shape[3]
    og, blk = o // groups, _block(x.dtype)
    nb = -(-og // blk) if og else 0
    # per thread and group: cg rows of the weight gradient, then the bias gradient's
    parts = np.zeros((max(1, get_max_threads()), groups, cg + 1, nb * blk), x.dtype)
    if gy.size and (x.size and cg or bias):
        dy = gy.reshape(-1, o)
        if og != nb * blk:   # whole blocks per group: each reads 2L values of dy
            pad = np.zeros((dy.shape[0], groups, nb * blk), x.dtype)
            pad[:, :, :og] = dy.reshape(-1, groups, og)
            dy = pad.reshape(dy.shape[0], -1)
        _weight(x, dy, parts, gy.shape[1], gy.shape[2], cg, groups, nb, sh, sw, bias)
    total = parts.sum(axis=0)[:, :, :og]
    gw[0, 0] = total[:, :cg].transpose(1, 0, 2).reshape(cg, o)
    if bias:
        gb[...] = total[:, cg].reshape(o)


# ------------------------------------------------------------------------------------ drivers
def _run(const floating[:, :, :, ::1] src, floating[:, :, :, ::1] dst, Py_ssize_t K,
         Py_ssize_t M, Py_ssize_t G, Py_ssize_t NB, const floating[:, :, :, ::1] wp, bp,
         bint relu, Py_ssize_t sh, Py_ssize_t sw, bint adjoint):
    """``fc_pw`` over the pixels: the forward pass (src = x, dst = y) or, ``adjoint``, the input
    gradient (src = gy, dst = gx, whose unread pixels are zeroed)."""
    cdef const floating[:, :, :, ::1] bv
    cdef const floating* bptr = NULL
    if bp is not None:
        bv = bp
        bptr = &bv[0, 0, 0, 0]
    # x is the strided side: its rows and pixels step by sh, sw
    cdef Py_ssize_t N = src.shape[0], OH = src.shape[1], OW = src.shape[2], O = src.shape[3]
    cdef Py_ssize_t H = dst.shape[1], W = dst.shape[2], C = dst.shape[3]
    if not adjoint:
        OH, OW, O, H, W, C = H, W, C, OH, OW, O
    cdef Py_ssize_t total = src.shape[0] * src.shape[1] * src.shape[2], tasks, t, n, r, j, cnt
    cdef const floating* s
    cdef floating* d
    cdef const floating* w0 = &wp[0, 0, 0, 0]
    with nogil:
        if sh == 1 and sw == 1:   # one row of N*H*W pixels, in chunks
            tasks = (total + _CHUNK - 1) // _CHUNK
            for t in prange(tasks, schedule="static"):
                cnt = min(_CHUNK, total - t * _CHUNK)
                s = &src[0, 0, 0, 0] + t * _CHUNK * src.shape[3]
                d = &dst[0, 0, 0, 0] + t * _CHUNK * dst.shape[3]
                if floating is float:
                    fc_pw_float(cnt, s, src.shape[3], d, dst.shape[3], K, G, NB, M, w0, bptr,
                                relu)
                else:
                    fc_pw_double(cnt, s, src.shape[3], d, dst.shape[3], K, G, NB, M, w0, bptr,
                                 relu)
        elif not adjoint:         # one output row per task, reading x's row r*sh
            for t in prange(N * OH, schedule="static"):
                n = t // OH
                r = t - n * OH
                s = &src[n, r * sh, 0, 0]
                d = &dst[n, r, 0, 0]
                if floating is float:
                    fc_pw_float(OW, s, sw * C, d, O, K, G, NB, M, w0, bptr, relu)
                else:
                    fc_pw_double(OW, s, sw * C, d, O, K, G, NB, M, w0, bptr, relu)
        else:                     # one row of gx per task: computed at j*sw, zeros elsewhere
            for t in prange(N * H, schedule="static"):
                n = t // H
                r = t - n * H
                d = &dst[n, r, 0, 0]
                if r % sh or r // sh >= OH:
                    memset(d, 0, W * C * sizeof(floating))
                else:
                    s = &src[n, r // sh, 0, 0]
                    if floating is float:
                        fc_pw_float(OW, s, O, d, sw * C, K, G, NB, M, w0, NULL, 0)
                    else:
                        fc_pw_double(OW, s, O, d, sw * C, K, G, NB, M, w0, NULL, 0)
                    for j in range(W):
                        if j % sw or j // sw >= OW:
                            memset(d + j * C, 0, C * sizeof(floating))


def _weight(const floating[:, :, :, ::1] x, const floating[:, ::1] dy,
            floating[:, :, :, ::1] parts, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Cg,
            Py_ssize_t G, Py_ssize_t NB, Py_ssize_t sh, Py_ssize_t sw, bint bias):
    """``parts[thread]`` += the weight gradient of the pixels that thread ran (``dy``: rows of
    whole blocks per group), and their bias gradient when ``bias``."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[3], D = dy.shape[1], total = dy.shape[0]
    cdef Py_ssize_t tasks, t, n, r, cnt
    cdef const floating* xs
    cdef floating* acc
    cdef bint flat = sh == 1 and sw == 1
    tasks = (total + _WCHUNK - 1) // _WCHUNK if flat else N * OH
    with nogil:
        for t in prange(tasks, schedule="static", num_threads=parts.shape[0]):
            acc = &parts[threadid(), 0, 0, 0]
            if flat:
                cnt = min(_WCHUNK, total - t * _WCHUNK)
                xs = &x[0, 0, 0, 0] + t * _WCHUNK * C
                r = t * _WCHUNK
            else:
                n = t // OH
                cnt = OW
                xs = &x[n, (t - n * OH) * sh, 0, 0]
                r = t * OW
            if floating is float:
                fc_pw_w_float(cnt, xs, C if flat else sw * C, &dy[r, 0], D, Cg, G, NB, acc, bias)
            else:
                fc_pw_w_double(cnt, xs, C if flat else sw * C, &dy[r, 0], D, Cg, G, NB, acc,
                               bias)
