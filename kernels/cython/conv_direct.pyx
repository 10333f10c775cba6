"""Direct grouped 2-D convolution, NHWC activations x HWIO weights (``kernels/README.md``).

Each public function checks its arguments in plain Python, lists the filter taps that reach a
real cell along each axis (``_taps``; padded cells read as zeros and are skipped), then runs a
fused (float32/float64) kernel without the GIL, one static range of rows (weight gradient:
bands of rows) per thread. The hot loops are C (GCC vector extensions), compiled twice by
``target_clones``: AVX2+FMA (chosen at run time) and the build's baseline (``fc_isa.h``).

- ``cd_tile``: a register tile of 3 pixels x 4 vectors of output channels (where there are
  fewer, up to 4 pixels x 2 vectors), summed over every tap (rows x (column, channel)) before
  one store: the forward pass over the columns whose taps are all real, and the weight
  gradient (tiles of taps x channels summed over a row's columns). ``cd_vtile``: tiles of up
  to 4 pixels x 2 vectors with a vector instead of a broadcast scalar.
- Weight gradient, not expanded: ``cd_gemm``, a GEMM (every tap x output channels) whose
  reduction runs over a band of output rows, in register tiles of 3 taps x 4 vectors (or 6 x 2,
  6 x 1) kept over all the band's pixels whose taps are all real, prefetching the next band
  one line every few pixels. Where the CPU has AVX-512 (:data:`AVX512`), its vectors are 64
  bytes and, with 32 registers, its tiles of 4 vectors 6 taps tall. Unless gy's vectors are
  aligned (to a vector), the band is first copied to an aligned per-thread buffer
  (``cd_pack``, which also sums the bias gradient); otherwise the bias gradient sums the band
  in registers (``cd_rowsum``).
- Groups of 4 input and 4 output channels filling whole vectors (ResNeXt's 32x4d): ``cd_rot4``,
  x's vector at the output's channels rotated within each group of 4 lanes (three in-lane
  permutes) times weights rotated the same way once per call (``_rotations``): a pixel's sums over
  every tap in registers, four vectors at a time, the epilogue in them; x is read in place.
  Their weight gradient (``cd_wrot4``) sums x's rotated lanes times gy over each output row, a
  strip of channels at a time, into the rotated layout, taken back once per call.
- Other layers with few output channels per group (``Og < WIDE``) run "expanded": a row of x
  is copied once per input channel into ``xe[ci, iw, o] = x[iw, (o // Og)*Cg + ci]`` (a
  per-thread cache of the rows an output row needs), so that the tiles run over all O channels
  at once.
- Input gradient, few input channels per group (``Cg < WIDE``), ``Og >= 8``: one group with unit
  column stride and dilation runs ``cd_xrow``, an input row with its pixels in lanes (register
  tiles of 3 channels x 4 vectors of columns summed over every tap and output channel) from the
  rows of gy it reads, transposed once each into a per-thread ring (``cd_trow``) with zero
  columns either side: no per-cell lane sums and no border cases. Other layouts run
  ``cd_tdot``, dot products over the taps and the group's output channels, blocks of 3
  channels x 4 pixels (2 x 4, 1 x 8) sharing each load of gy and w. ``Og < 8``: with unit
  strides the forward pass on gy with the flipped filter (``_adjoint``), else per-channel sums
  added up per group; many input channels: broadcast over them.
- Pixels at the borders and everything else: ``cd_bcast`` / ``cd_dot``, several taps per pass.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport uintptr_t
from libc.string cimport memset

import functools

import numpy as np

from fastconv.kernels import _adjoint, _checks
from fastconv.kernels._stream import streamed
from fastconv.kernels._taps import taps as _taps
from fastconv.kernels.cython.threads import get_max_threads

# channels per group below which a side runs vector x vector (expanded) instead of broadcast
cdef enum:
    WIDE = 16

# outputs of this many bytes or more (more than stays in cache; up to kernels/_stream.py's
# bound) are computed row by row in a per-thread buffer, then streamed to memory by
# non-temporal stores: no read of y's lines
_NT = 1 << 22

cdef extern from *:
    """
    #include "fc_isa.h"
    #include "fc_stream.h"
    /* out[k] += sum over t < m of a[t*as] * b[t*bs + k], for k < n; four terms per pass */
    #define CD_BCAST(T)                                                                     \\
    FC_CLONES static void cd_bcast_##T(Py_ssize_t n, Py_ssize_t m, const T* a, Py_ssize_t as, \\
                                       const T* b, Py_ssize_t bs, T* __restrict out) {      \\
        Py_ssize_t t = 0;                                                                   \\
        for (; t + 4 <= m; t += 4) {                                                        \\
            const T a0 = a[t * as], a1 = a[(t + 1) * as], a2 = a[(t + 2) * as];              \\
            const T a3 = a[(t + 3) * as];                                                   \\
            const T *b0 = b + t * bs, *b1 = b0 + bs, *b2 = b1 + bs, *b3 = b2 + bs;          \\
            for (Py_ssize_t k = 0; k < n; k++)                                              \\
                out[k] += a0 * b0[k] + a1 * b1[k] + a2 * b2[k] + a3 * b3[k];                \\
        }                                                                                   \\
        if (t + 2 <= m) {                                                                   \\
            const T a0 = a[t * as], a1 = a[(t + 1) * as];                                  \\
            const T *b0 = b + t * bs, *b1 = b0 + bs;                                        \\
            for (Py_ssize_t k = 0; k < n; k++)                                              \\
                out[k] += a0 * b0[k] + a1 * b1[k];                                          \\
            t += 2;                                                                         \\
        }                                                                                   \\
        if (t < m) {                                                                        \\
            const T a0 = a[t * as];                                                         \\
            const T *b0 = b + t * bs;                                                       \\
            for (Py_ssize_t k = 0; k < n; k++)                                              \\
                out[k] += a0 * b0[k];                                                       \\
        }                                                                                   \\
    }
    /* out[k] += sum over t < m of a[t*as + k] * b[t*bs + k], for k < n; three terms per pass */
    #define CD_DOT(T)                                                                       \\
    FC_CLONES static void cd_dot_##T(Py_ssize_t n, Py_ssize_t m, const T* a, Py_ssize_t as,  \\
                                     const T* b, Py_ssize_t bs, T* __restrict out) {        \\
        Py_ssize_t t = 0;                                                                   \\
        for (; t + 3 <= m; t += 3) {                                                        \\
            const T *a0 = a + t * as, *a1 = a0 + as, *a2 = a1 + as;                        \\
            const T *b0 = b + t * bs, *b1 = b0 + bs, *b2 = b1 + bs;                         \\
            for (Py_ssize_t k = 0; k < n; k++)                                              \\
                out[k] += a0[k] * b0[k] + a1[k] * b1[k] + a2[k] * b2[k];                    \\
        }                                                                                   \\
        if (t + 2 <= m) {                                                                   \\
            const T *a0 = a + t * as, *a1 = a0 + as, *b0 = b + t * bs, *b1 = b0 + bs;      \\
            for (Py_ssize_t k = 0; k < n; k++)                                              \\
                out[k] += a0[k] * b0[k] + a1[k] * b1[k];                                    \\
            t += 2;                                                                         \\
        }                                                                                   \\
        if (t < m) {                                                                        \\
            const T *a0 = a + t * as, *b0 = b + t * bs;                                     \\
            for (Py_ssize_t k = 0; k < n; k++)                                              \\
                out[k] += a0[k] * b0[k];                                                    \\
        }                                                                                   \\
    }
    /* out[p*os + k] (+)= sum over r < mi, t < m of A * b[r*br + t*bs + k] for p < P, k < n,
       A = a[p*as + r*ar + t*at] (cd_tile: a scalar broadcast) or a[p*as + r*ar + t*at + k]
       (cd_vtile: a vector): a register tile of PB rows of out x VB vectors of k, the sum over
       (r, t) kept in registers; out is overwritten unless acc */
    /* a tile's sums s stored at o: added unless overwritten, then (+ bias[kk], then ReLU as
       fc_epilogue: v < 0 -> 0, NaN stays NaN) */
    #define CD_BIAS_RELU(v, kk) {                                                           \\
        typedef __typeof__(v < v) VI;                                                       \\
        if (bias) v += *(const V*)(bias + (kk));                                            \\
        if (relu) v = (V)((VI)v & ~(VI)(v < (V){0}));                                       \\
    }
    #define CD_STORE(o, s, kk) {                                                            \\
        V cs_ = (s);                                                                        \\
        if (acc) cs_ += *(V*)(o);                                                           \\
        else CD_BIAS_RELU(cs_, kk)                                                          \\
        *(V*)(o) = cs_; }
    #define CD_BCX(ap, k) (ap)[0]
    #define CD_VCX(ap, k) (*(const V*)((ap) + (k)))
    #define CD_BLOCK(T, PB, VB, NAME, X, VK)                                                \\
    static inline __attribute__((always_inline)) void NAME##PB##_##VB##_##T(               \\
            Py_ssize_t k, Py_ssize_t mi, Py_ssize_t m, const T* a, Py_ssize_t as,          \\
            Py_ssize_t ar, Py_ssize_t at, const T* b, Py_ssize_t br, Py_ssize_t bs,        \\
            T* out, Py_ssize_t os, int acc, const T* bias, int relu) {                      \\
        typedef T V __attribute__((vector_size(32), aligned(sizeof(T))));                  \\
        const Py_ssize_t L = 32 / sizeof(T);                                                \\
        V c[PB][VB];                                                                        \\
        for (int q = 0; q < PB; q++)                                                        \\
            for (int v = 0; v < VB; v++) c[q][v] = (V){0};                                  \\
        for (Py_ssize_t r = 0; r < mi; r++)                                                 \\
            for (Py_ssize_t t = 0; t < m; t++) {                                            \\
                const T* bp = b + r * br + t * bs + k;                                      \\
                const T* ap = a + r * ar + t * at + VK * k;                                 \\
                V wv[VB];                                                                   \\
                for (int v = 0; v < VB; v++) wv[v] = *(const V*)(bp + v * L);              \\
                for (int q = 0; q < PB; q++)                                                \\
                    for (int v = 0; v < VB; v++) c[q][v] += X(ap + q * as, v * L) * wv[v];  \\
            }                                                                               \\
        for (int q = 0; q < PB; q++)                                                        \\
            for (int v = 0; v < VB; v++) CD_STORE(out + q * os + k + v * L, c[q][v], k + v * L) \\
    }
    /* cd_tile first runs blocks of PB rows x four vectors of k over all whole blocks of four
       vectors: 12 sums for 7 loads (cifar1's forward 0.79-0.83x its time in blocks of 4 rows x
       2 vectors, 8 sums for 6 loads); cd_vtile's would load a vector per sum */
    #define CD_WIDE_cd_tile(T)                                                              \\
        for (; k + 128 / (Py_ssize_t)sizeof(T) <= n; k += 128 / sizeof(T)) {               \\
            Py_ssize_t p = 0;                                                               \\
            for (; p + 3 <= P; p += 3) CD_TCALL(T, cd_tile, 3, 4);                          \\
            if (P - p == 2) CD_TCALL(T, cd_tile, 2, 4);                                     \\
            else if (P - p == 1) CD_TCALL(T, cd_tile, 1, 4);                                \\
        }
    #define CD_TCALL(T, NAME, PB, VB) NAME##PB##_##VB##_##T(k, mi, m, a + p * as, as, ar, at, b, \\
                                                           br, bs, out + p * os, os, acc, bias, \\
                                                           relu)
    #define CD_WIDE_cd_vtile(T)
    #define CD_TILE_FN(T, NAME, X, VK)                                                      \\
    CD_BLOCK(T, 3, 4, NAME, X, VK) CD_BLOCK(T, 2, 4, NAME, X, VK)                          \\
    CD_BLOCK(T, 1, 4, NAME, X, VK) CD_BLOCK(T, 4, 2, NAME, X, VK)                          \\
    CD_BLOCK(T, 3, 2, NAME, X, VK) CD_BLOCK(T, 2, 2, NAME, X, VK)                          \\
    CD_BLOCK(T, 1, 2, NAME, X, VK)                                                          \\
    FC_CLONES static void NAME##_##T(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi,             \\
            Py_ssize_t m, const T* a, Py_ssize_t as, Py_ssize_t ar, Py_ssize_t at,          \\
            const T* b, Py_ssize_t br, Py_ssize_t bs, T* out, Py_ssize_t os, int acc,       \\
            const T* bias, int relu) {                                                      \\
        const Py_ssize_t L2 = 64 / sizeof(T);                                               \\
        Py_ssize_t k = 0;                                                                   \\
        CD_WIDE_##NAME(T)                                                                   \\
        for (; k + L2 <= n; k += L2) {                                                      \\
            Py_ssize_t p = 0;                                                               \\
            for (; p + 4 <= P; p += 4) CD_TCALL(T, NAME, 4, 2);                             \\
            switch (P - p) {                                                                \\
            case 3: CD_TCALL(T, NAME, 3, 2); break;                                         \\
            case 2: CD_TCALL(T, NAME, 2, 2); break;                                         \\
            case 1: CD_TCALL(T, NAME, 1, 2); break;                                         \\
            }                                                                               \\
        }                                                                                   \\
        for (; k < n; k++)                                                                  \\
            for (Py_ssize_t p = 0; p < P; p++) {                                            \\
                T s = 0;                                                                    \\
                for (Py_ssize_t r = 0; r < mi; r++)                                         \\
                    for (Py_ssize_t t = 0; t < m; t++)                                      \\
                        s += a[p * as + r * ar + t * at + VK * k] * b[r * br + t * bs + k]; \\
                if (acc) s += out[p * os + k];                                              \\
                else {                                                                      \\
                    if (bias) s += bias[k];                                                 \\
                    if (relu && s < 0) s = 0;                                               \\
                }                                                                           \\
                out[p * os + k] = s;                                                        \\
            }                                                                               \\
    }
    #define CD_TILE(T) CD_TILE_FN(T, cd_tile, CD_BCX, 0) CD_TILE_FN(T, cd_vtile, CD_VCX, 1)
    CD_TILE(float)
    CD_TILE(double)
    /* res[i] = the sum of the lanes of c[i], i < cnt: float vectors eight at a time by a
       shuffle tree (pairwise adds, then the two halves), double lane by lane */
    typedef float cd_vfloat __attribute__((vector_size(32), aligned(sizeof(float))));
    typedef double cd_vdouble __attribute__((vector_size(32), aligned(sizeof(double))));
    typedef int cd_vint __attribute__((vector_size(32)));
    #ifdef __clang__
    #define CD_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
    #else
    #define CD_SHUF(a, b, ...) __builtin_shuffle(a, b, (cd_vint){__VA_ARGS__})
    #endif
    #define CD_HADD(a, b) (CD_SHUF(a, b, 0, 2, 8, 10, 4, 6, 12, 14) +                        \\
                           CD_SHUF(a, b, 1, 3, 9, 11, 5, 7, 13, 15))
    static inline __attribute__((always_inline)) void cd_lanes_float(const cd_vfloat* c,
                                                                      int cnt, float* res) {
        for (int i = 0; i < cnt; i += 8) {
            cd_vfloat v[8];
            for (int j = 0; j < 8; j++) v[j] = i + j < cnt ? c[i + j] : (cd_vfloat){0};
            cd_vfloat h = CD_HADD(CD_HADD(v[0], v[1]), CD_HADD(v[2], v[3]));
            cd_vfloat g = CD_HADD(CD_HADD(v[4], v[5]), CD_HADD(v[6], v[7]));
            cd_vfloat r = CD_SHUF(h, g, 0, 1, 2, 3, 8, 9, 10, 11) +
                          CD_SHUF(h, g, 4, 5, 6, 7, 12, 13, 14, 15);
            for (int j = 0; j < 8 && i + j < cnt; j++) res[i + j] = r[j];
        }
    }
    static inline __attribute__((always_inline)) void cd_lanes_double(const cd_vdouble* c,
                                                                       int cnt, double* res) {
        for (int i = 0; i < cnt; i++) res[i] = (c[i][0] + c[i][1]) + (c[i][2] + c[i][3]);
    }
    /* out[p*os + c] = sum over r < mi, t < m, k < n of a[p*as + r*ar + t*at + k] *
       b[c*bc + r*br + t*bs + k] for p < P, c < nc: CB channels x PB pixels of dot products at
       a time (each load of a and b shared), lanes summed at the end; small blocks keep KU sets
       of sums over successive vectors of k, so that the FMAs do not wait on each other */
    #define CD_DBLOCK(T, CB, PB)                                                            \\
    static inline __attribute__((always_inline)) void cd_dblock##CB##_##PB##_##T(         \\
            Py_ssize_t n, Py_ssize_t mi, Py_ssize_t m, const T* a, Py_ssize_t as,          \\
            Py_ssize_t ar, Py_ssize_t at, const T* b, Py_ssize_t bc, Py_ssize_t br,        \\
            Py_ssize_t bs, T* out, Py_ssize_t os) {                                         \\
        typedef cd_v##T V;                                                                  \\
        enum { L = 32 / sizeof(T), N = PB * CB, KU = N >= 6 ? 1 : N >= 2 ? 2 : 4 };         \\
        V c[KU][N];                                                                         \\
        T s[N], res[N];                                                                     \\
        for (int i = 0; i < N; i++) {                                                       \\
            s[i] = 0;                                                                       \\
            for (int z = 0; z < KU; z++) c[z][i] = (V){0};                                  \\
        }                                                                                   \\
        for (Py_ssize_t r = 0; r < mi; r++)                                                 \\
            for (Py_ssize_t t = 0; t < m; t++) {                                            \\
                const T* ap = a + r * ar + t * at;                                          \\
                const T* bp = b + r * br + t * bs;                                          \\
                Py_ssize_t k = 0;                                                           \\
                for (; k + KU * L <= n; k += KU * L)                                        \\
                    for (int z = 0; z < KU; z++)                                            \\
                        for (int u = 0; u < CB; u++) {                                      \\
                            V wv = *(const V*)(bp + u * bc + k + z * L);                    \\
                            for (int q = 0; q < PB; q++)                                    \\
                                c[z][q * CB + u] += *(const V*)(ap + q * as + k + z * L) * wv; \\
                        }                                                                   \\
                for (; k + L <= n; k += L)                                                  \\
                    for (int u = 0; u < CB; u++) {                                          \\
                        V wv = *(const V*)(bp + u * bc + k);                                \\
                        for (int q = 0; q < PB; q++)                                        \\
                            c[0][q * CB + u] += *(const V*)(ap + q * as + k) * wv;          \\
                    }                                                                       \\
                for (; k < n; k++)                                                          \\
                    for (int u = 0; u < CB; u++)                                            \\
                        for (int q = 0; q < PB; q++)                                        \\
                            s[q * CB + u] += ap[q * as + k] * bp[u * bc + k];               \\
            }                                                                               \\
        for (int z = 1; z < KU; z++)                                                        \\
            for (int i = 0; i < N; i++) c[0][i] += c[z][i];                                 \\
        cd_lanes_##T(c[0], N, res);                                                         \\
        for (int q = 0; q < PB; q++)                                                        \\
            for (int u = 0; u < CB; u++) out[q * os + u] = res[q * CB + u] + s[q * CB + u]; \\
    }
    /* the P pixels in blocks of PB, then one by one, for CB channels */
    #define CD_DPIX(T, CB, PB)                                                              \\
        { Py_ssize_t p = 0;                                                                 \\
          for (; p + PB <= P; p += PB)                                                      \\
              cd_dblock##CB##_##PB##_##T(n, mi, m, a + p * as, as, ar, at, b + ci * bc, bc, \\
                                         br, bs, out + p * os + ci, os);                    \\
          for (; p < P; p++)                                                                \\
              cd_dblock##CB##_1_##T(n, mi, m, a + p * as, as, ar, at, b + ci * bc, bc, br,  \\
                                    bs, out + p * os + ci, os); }
    #define CD_TDOT(T)                                                                      \\
    CD_DBLOCK(T, 3, 4) CD_DBLOCK(T, 2, 4) CD_DBLOCK(T, 1, 8)                               \\
    CD_DBLOCK(T, 3, 1) CD_DBLOCK(T, 2, 1) CD_DBLOCK(T, 1, 1)                               \\
    FC_CLONES static void cd_tdot_##T(Py_ssize_t n, Py_ssize_t P, Py_ssize_t nc,            \\
            Py_ssize_t mi, Py_ssize_t m, const T* a, Py_ssize_t as, Py_ssize_t ar,          \\
            Py_ssize_t at, const T* b, Py_ssize_t bc, Py_ssize_t br, Py_ssize_t bs, T* out, \\
            Py_ssize_t os) {                                                                \\
        Py_ssize_t ci = 0;                                                                  \\
        for (; ci + 3 <= nc; ci += 3) CD_DPIX(T, 3, 4)                                      \\
        if (nc - ci == 2) CD_DPIX(T, 2, 4)                                                  \\
        else if (nc - ci == 1) CD_DPIX(T, 1, 8)                                             \\
    }
    CD_TDOT(float)
    CD_TDOT(double)
    /* out[t*os + k] += sum over r < R, q < Q of a[r*ar + q*aq + off[t]] * b[r*br + q*bq + k]
       for t < nt, k < n: a GEMM whose reduction runs over R x Q pixels, in register tiles of
       TB taps (broadcast) x VB vectors of k kept over every pixel. One line of [*pf, pe) (the
       next band of b, which the hardware prefetchers fetch too late for the first block) is
       prefetched every ev pixels (counted in *cnt), moving *pf on: spread over the band, not in
       a burst (cifar1's weight gradient ran 10-20 % faster), but issued at the start of each
       row r, outside the loop over its pixels (the GEMM 0.87x its time with the test in it) */
    #define CD_GBLOCK(T, TB, VB, W)                                                         \\
    static inline __attribute__((always_inline)) void cd_gblock##TB##_##VB##_##T##_v##W(  \\
            Py_ssize_t k, Py_ssize_t R, Py_ssize_t Q, const T* a, Py_ssize_t ar,           \\
            Py_ssize_t aq, const Py_ssize_t* off, const T* b, Py_ssize_t br, Py_ssize_t bq, \\
            T* out, Py_ssize_t os, const char** pf, const char* pe, Py_ssize_t ev,          \\
            Py_ssize_t* cnt) {                                                              \\
        typedef T V __attribute__((vector_size(W), aligned(sizeof(T))));                   \\
        const Py_ssize_t L = W / sizeof(T);                                                 \\
        const char* p = *pf;                                                                \\
        Py_ssize_t e = *cnt;                                                                \\
        V c[TB][VB];                                                                        \\
        Py_ssize_t o[TB];                                                                   \\
        for (int t = 0; t < TB; t++) {                                                      \\
            o[t] = off[t];                                                                  \\
            for (int v = 0; v < VB; v++) c[t][v] = (V){0};                                  \\
        }                                                                                   \\
        for (Py_ssize_t r = 0; r < R; r++) {                                                \\
            for (e += Q; p < pe && e >= ev; e -= ev) { __builtin_prefetch(p, 0, 3); p += 64; } \\
            for (Py_ssize_t q = 0; q < Q; q++) {                                            \\
                const T* ap = a + r * ar + q * aq;                                          \\
                const T* bp = b + r * br + q * bq + k;                                      \\
                V g[VB];                                                                    \\
                for (int v = 0; v < VB; v++) g[v] = *(const V*)(bp + v * L);               \\
                for (int t = 0; t < TB; t++) {                                              \\
                    const T s = ap[o[t]];                                                   \\
                    for (int v = 0; v < VB; v++) c[t][v] += s * g[v];                      \\
                }                                                                           \\
            }                                                                               \\
        }                                                                                   \\
        for (int t = 0; t < TB; t++)                                                        \\
            for (int v = 0; v < VB; v++) *(V*)(out + t * os + k + v * L) += c[t][v];        \\
        *pf = p;                                                                            \\
        *cnt = e;                                                                           \\
    }
    /* the nt taps in blocks of TB, the rest by a block of their number, for VB vectors at k */
    #define CD_GCALL(T, TB, VB, W)                                                          \\
        cd_gblock##TB##_##VB##_##T##_v##W(k, R, Q, a, ar, aq, off + t, b, br, bq, out + t * os, \\
                                          os, &pf, pe, ev, &e)
    #define CD_GTAPS(T, VB, W)                                                              \\
        { Py_ssize_t t = 0;                                                                 \\
          for (; t + 6 <= nt; t += 6) CD_GCALL(T, 6, VB, W);                                \\
          switch (nt - t) {                                                                 \\
          case 5: CD_GCALL(T, 5, VB, W); break; case 4: CD_GCALL(T, 4, VB, W); break;       \\
          case 3: CD_GCALL(T, 3, VB, W); break; case 2: CD_GCALL(T, 2, VB, W); break;       \\
          case 1: CD_GCALL(T, 1, VB, W); break; } }
    #define CD_GBLOCKS(T, VB, W) CD_GBLOCK(T, 6, VB, W) CD_GBLOCK(T, 5, VB, W)              \\
        CD_GBLOCK(T, 4, VB, W) CD_GBLOCK(T, 3, VB, W) CD_GBLOCK(T, 2, VB, W)                \\
        CD_GBLOCK(T, 1, VB, W)
    /* four vectors at k: tiles of 3 taps with 16 vector registers (AVX2), 6 with 32 */
    #define CD_G4BLOCKS_32(T) CD_GBLOCK(T, 3, 4, 32) CD_GBLOCK(T, 2, 4, 32) CD_GBLOCK(T, 1, 4, 32)
    #define CD_G4BLOCKS_64(T) CD_GBLOCKS(T, 4, 64)
    #define CD_G4_32(T)                                                                     \\
        { Py_ssize_t t = 0;                                                                 \\
          for (; t + 3 <= nt; t += 3) CD_GCALL(T, 3, 4, 32);                                \\
          if (nt - t == 2) CD_GCALL(T, 2, 4, 32);                                           \\
          else if (nt - t == 1) CD_GCALL(T, 1, 4, 32); }
    #define CD_G4_64(T) CD_GTAPS(T, 4, 64)
    /* W: the vector's bytes (64: AVX-512 only, FC_WIDE) */
    #define CD_GEMM(T, W, ISA)                                                              \\
    CD_G4BLOCKS_##W(T) CD_GBLOCKS(T, 2, W) CD_GBLOCKS(T, 1, W)                              \\
    ISA static void cd_gemm_##T##_v##W(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t R,           \\
            Py_ssize_t Q, const T* a, Py_ssize_t ar, Py_ssize_t aq, const Py_ssize_t* off,  \\
            const T* b, Py_ssize_t br, Py_ssize_t bq, T* out, Py_ssize_t os, const char* pf, \\
            Py_ssize_t pn) {                                                                \\
        const Py_ssize_t L = W / sizeof(T);                                                 \\
        const char* pe = pf + pn;                                                           \\
        /* the prefetches spread evenly over the pixel passes: one every ev */              \\
        const Py_ssize_t n4 = n / (4 * L), n2 = (n - n4 * 4 * L) / (2 * L);                 \\
        const Py_ssize_t n1 = (n - n4 * 4 * L - n2 * 2 * L) / L;                            \\
        const Py_ssize_t t4 = W == 64 ? 6 : 3;                                              \\
        const Py_ssize_t its = (n4 * ((nt + t4 - 1) / t4) + (n2 + n1) * ((nt + 5) / 6)) * R * Q; \\
        const Py_ssize_t ev = pn >= 64 && its >= pn / 64 ? its / (pn / 64) : 1;             \\
        Py_ssize_t e = 0;                                                                   \\
        Py_ssize_t k = 0;                                                                   \\
        for (; k + 4 * L <= n; k += 4 * L) CD_G4_##W(T)                                     \\
        for (; k + 2 * L <= n; k += 2 * L) CD_GTAPS(T, 2, W)                                \\
        for (; k + L <= n; k += L) CD_GTAPS(T, 1, W)                                        \\
        for (; k < n; k++)                                                                  \\
            for (Py_ssize_t t = 0; t < nt; t++) {                                           \\
                T s = 0;                                                                    \\
                for (Py_ssize_t r = 0; r < R; r++)                                          \\
                    for (Py_ssize_t q = 0; q < Q; q++)                                      \\
                        s += a[r * ar + q * aq + off[t]] * b[r * br + q * bq + k];          \\
                out[t * os + k] += s;                                                       \\
            }                                                                               \\
    }
    CD_GEMM(float, 32, FC_CLONES)
    CD_GEMM(double, 32, FC_CLONES)
    CD_GEMM(float, 64, FC_WIDE)
    CD_GEMM(double, 64, FC_WIDE)
    CD_BCAST(float)
    CD_BCAST(double)
    CD_DOT(float)
    CD_DOT(double)
    /* acc[k] += sum over p < P of src[p*n + k], k < n: four vectors of k summed in registers
       over all P pixels, then added */
    #define CD_ROWSUM(T)                                                                    \
    FC_CLONES static void cd_rowsum_##T(Py_ssize_t P, Py_ssize_t n, const T* src, T* acc) { \
        typedef cd_v##T V;                                                                  \
        const Py_ssize_t L = 32 / sizeof(T);                                                \
        Py_ssize_t k = 0;                                                                   \
        for (; k + 4 * L <= n; k += 4 * L) {                                                \
            V c[4] = {{0}};                                                                 \
            for (Py_ssize_t p = 0; p < P; p++)                                              \
                for (int v = 0; v < 4; v++) c[v] += *(const V*)(src + p * n + k + v * L);  \
            for (int v = 0; v < 4; v++) *(V*)(acc + k + v * L) += c[v];                     \
        }                                                                                   \
        for (; k < n; k++) {                                                                \
            T c = 0;                                                                        \
            for (Py_ssize_t p = 0; p < P; p++) c += src[p * n + k];                         \
            acc[k] += c;                                                                    \
        }                                                                                   \
    }
    CD_ROWSUM(float)
    CD_ROWSUM(double)
    /* dst[(r*Q + q)*ld + k] = src[r*sr + q*sq + k] for r < R, q < Q, k < n (dst and ld: whole
       aligned vectors), and acc[k] += their sum over r, q unless acc is NULL */
    #define CD_PACK(T)                                                                      \\
    FC_CLONES static void cd_pack_##T(Py_ssize_t R, Py_ssize_t Q, Py_ssize_t n, const T* src, \\
            Py_ssize_t sr, Py_ssize_t sq, T* dst, Py_ssize_t ld, T* acc) {                  \\
        typedef cd_v##T V;                                                                  \\
        typedef T VA __attribute__((vector_size(32)));                                      \\
        const Py_ssize_t L = 32 / sizeof(T);                                                \\
        Py_ssize_t k = 0;                                                                   \\
        for (; k + L <= n; k += (n - k >= 4 * L ? 4 * L : L)) {                             \\
            const int nv = n - k >= 4 * L ? 4 : 1;                                          \\
            V c[4] = {{0}};                                                                 \\
            for (Py_ssize_t r = 0; r < R; r++)                                              \\
                for (Py_ssize_t q = 0; q < Q; q++) {                                        \\
                    const T* s = src + r * sr + q * sq + k;                                 \\
                    T* d = dst + (r * Q + q) * ld + k;                                      \\
                    if (nv == 4)                                                            \\
                        for (int v = 0; v < 4; v++) {                                       \\
                            const V g = *(const V*)(s + v * L);                            \\
                            *(VA*)(d + v * L) = g; c[v] += g;                               \\
                        }                                                                   \\
                    else { const V g = *(const V*)s; *(VA*)d = g; c[0] += g; }              \\
                }                                                                           \\
            if (acc)                                                                        \\
                for (int v = 0; v < nv; v++) *(V*)(acc + k + v * L) += c[v];                \\
        }                                                                                   \\
        for (; k < n; k++) {                                                                \\
            T c = 0;                                                                        \\
            for (Py_ssize_t r = 0; r < R; r++)                                              \\
                for (Py_ssize_t q = 0; q < Q; q++) {                                        \\
                    const T g = src[r * sr + q * sq + k];                                   \\
                    dst[(r * Q + q) * ld + k] = g; c += g;                                  \\
                }                                                                           \\
            if (acc) acc[k] += c;                                                           \\
        }                                                                                   \\
    }
    CD_PACK(float)
    CD_PACK(double)
    #include "fc_epilogue.h"
    /* dst[o*ld + off + ow] = src[ow*sq + o] for ow < OW with 0 <= off + ow < ld, o < O: a row of
       gy with its pixels in lanes (float: 8 x 8 blocks by shuffles, the last pixels in a block
       completed by zeros where dst has room for them: its columns past the row are zeros) */
    static inline __attribute__((always_inline)) void cd_t8x8(const float* s, Py_ssize_t ss,
                                                               float* d, Py_ssize_t ds) {
        typedef cd_vfloat V;
        V r[8], t[8], u[8];
        for (int i = 0; i < 8; i++) r[i] = *(const V*)(s + i * ss);
        for (int i = 0; i < 8; i += 2) {
            t[i] = CD_SHUF(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
            t[i + 1] = CD_SHUF(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
        }
        for (int i = 0; i < 8; i += 4)
            for (int h = 0; h < 2; h++) {
                u[i + 2 * h] = CD_SHUF(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                u[i + 2 * h + 1] = CD_SHUF(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
            }
        for (int i = 0; i < 4; i++) {
            *(V*)(d + i * ds) = CD_SHUF(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
            *(V*)(d + (i + 4) * ds) = CD_SHUF(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        }
    }
    #define CD_TROW(T, BLOCKS)                                                              \\
    FC_CLONES static void cd_trow_##T(Py_ssize_t OW, Py_ssize_t O, const T* src,            \\
                                      Py_ssize_t sq, T* dst, Py_ssize_t ld, Py_ssize_t off) { \\
        Py_ssize_t hi = ld - off < OW ? ld - off : OW, ow = off < 0 ? -off : 0;             \\
        if (BLOCKS)                                                                         \\
            for (; ow + 8 <= hi; ow += 8) {                                                 \\
                Py_ssize_t o = 0;                                                           \\
                for (; o + 8 <= O; o += 8)                                                  \\
                    cd_t8x8((const float*)src + ow * sq + o, sq, (float*)dst + o * ld + off + ow, ld); \\
                for (; o < O; o++)                                                          \\
                    for (int p = 0; p < 8; p++) dst[o * ld + off + ow + p] = src[(ow + p) * sq + o]; \\
            }                                                                               \\
        if (BLOCKS && ow < hi && off + ow + 8 <= ld) {                                      \\
            Py_ssize_t o = 0;                                                               \\
            for (; o + 8 <= O; o += 8) {                                                    \\
                cd_vfloat z[8];                                                             \\
                for (int p = 0; p < 8; p++)                                                 \\
                    z[p] = ow + p < hi ? *(const cd_vfloat*)((const float*)src + (ow + p) * sq + o) \\
                                       : (cd_vfloat){0};                                    \\
                cd_t8x8((const float*)z, 8, (float*)dst + o * ld + off + ow, ld);           \\
            }                                                                               \\
            for (; o < O; o++)                                                              \\
                for (Py_ssize_t p = ow; p < hi; p++) dst[o * ld + off + p] = src[p * sq + o]; \\
            ow = hi;                                                                        \\
        }                                                                                   \\
        for (; ow < hi; ow++)                                                               \\
            for (Py_ssize_t o = 0; o < O; o++) dst[o * ld + off + ow] = src[ow * sq + o];    \\
    }
    CD_TROW(float, 1)
    CD_TROW(double, 0)
    /* res[u*rs + p*L + l] = sum over a < mi, j < KW, o < O of g[sl[a]*gs + o*ld + KW-1-j + p*L
       + l] * w[tp[a]*wi + (j*C + u)*O + o] for u < CB, p < PV: the input gradient of CB channels
       x PV vectors of columns, from the rows of gy with their pixels in lanes (g, rows sl[a])
       and the weights of row taps tp[a]; KU sets of sums over successive o when the tile is
       small, so that the FMAs do not wait on each other. Each tap also prefetches up to 16
       lines of [*pf, pe) (the row of gy the next task transposes) and moves *pf on */
    #define CD_XBLOCK(T, CB, PV)                                                            \\
    static inline __attribute__((always_inline)) void cd_xblock##CB##_##PV##_##T(         \\
            Py_ssize_t mi, const T* g, Py_ssize_t gs, const Py_ssize_t* sl, const T* w,    \\
            Py_ssize_t wi, const Py_ssize_t* tp, Py_ssize_t KW, Py_ssize_t C, Py_ssize_t O, \\
            Py_ssize_t ld, T* res, Py_ssize_t rs, const char** pf, const char* pe) {        \\
        typedef cd_v##T V;                                                                  \\
        enum { L = 32 / sizeof(T), KU = CB * PV >= 8 ? 1 : 2 };                             \\
        V c[KU][CB][PV];                                                                    \\
        for (int z = 0; z < KU; z++)                                                        \\
            for (int u = 0; u < CB; u++)                                                    \\
                for (int p = 0; p < PV; p++) c[z][u][p] = (V){0};                           \\
        for (Py_ssize_t a = 0; a < mi; a++)                                                 \\
            for (Py_ssize_t j = 0; j < KW; j++) {                                           \\
                const T* gj = g + sl[a] * gs + KW - 1 - j;                                  \\
                const T* wj = w + tp[a] * wi + j * C * O;                                   \\
                for (int z = 0; z < 16 && *pf < pe; z++, *pf += 64)                         \\
                    __builtin_prefetch(*pf, 0, 3);                                          \\
                Py_ssize_t o = 0;                                                           \\
                for (; o + KU <= O; o += KU)                                                \\
                    for (int z = 0; z < KU; z++) {                                          \\
                        V gv[PV];                                                           \\
                        for (int p = 0; p < PV; p++) gv[p] = *(const V*)(gj + (o + z) * ld + p * L); \\
                        for (int u = 0; u < CB; u++) {                                      \\
                            const T sw = wj[u * O + o + z];                                 \\
                            for (int p = 0; p < PV; p++) c[z][u][p] += sw * gv[p];          \\
                        }                                                                   \\
                    }                                                                       \\
                for (; o < O; o++)                                                          \\
                    for (int u = 0; u < CB; u++) {                                          \\
                        const T sw = wj[u * O + o];                                         \\
                        for (int p = 0; p < PV; p++)                                        \\
                            c[0][u][p] += sw * *(const V*)(gj + o * ld + p * L);            \\
                    }                                                                       \\
            }                                                                               \\
        for (int u = 0; u < CB; u++)                                                        \\
            for (int p = 0; p < PV; p++) {                                                  \\
                for (int z = 1; z < KU; z++) c[0][u][p] += c[z][u][p];                      \\
                *(V*)(res + u * rs + p * L) = c[0][u][p];                                   \\
            }                                                                               \\
    }
    /* the Wv vectors of columns in blocks of 4, the rest by a block of their number */
    #define CD_XCALL(T, CB, PV) cd_xblock##CB##_##PV##_##T(mi, g + v * L, gs, sl, w + u * O, wi, tp, \\
                                                          KW, C, O, ld, res + u * rs + v * L, rs, \\
                                                          &pf, pe)
    #define CD_XCOLS(T, CB)                                                                 \\
        { Py_ssize_t v = 0;                                                                 \\
          for (; v + 4 <= Wv; v += 4) CD_XCALL(T, CB, 4);                                   \\
          switch (Wv - v) {                                                                 \\
          case 3: CD_XCALL(T, CB, 3); break; case 2: CD_XCALL(T, CB, 2); break;             \\
          case 1: CD_XCALL(T, CB, 1); break; } }
    #define CD_XBLOCKS(T, CB) CD_XBLOCK(T, CB, 4) CD_XBLOCK(T, CB, 3) CD_XBLOCK(T, CB, 2)    \\
                              CD_XBLOCK(T, CB, 1)
    /* out[q*C + u] = the input gradient of column q < W, channel u < C (cd_xblock), through
       res (C rows of Wv vectors) */
    #define CD_XROW(T)                                                                      \\
    CD_XBLOCKS(T, 3) CD_XBLOCKS(T, 2) CD_XBLOCKS(T, 1)                                      \\
    FC_CLONES static void cd_xrow_##T(Py_ssize_t mi, const T* g, Py_ssize_t gs,             \\
            const Py_ssize_t* sl, const T* w, Py_ssize_t wi, const Py_ssize_t* tp,          \\
            Py_ssize_t KW, Py_ssize_t C, Py_ssize_t O, Py_ssize_t ld, Py_ssize_t W, T* res, \\
            T* out, const char* pf, Py_ssize_t pn) {                                        \\
        const Py_ssize_t L = 32 / sizeof(T), Wv = (W + L - 1) / L, rs = Wv * L;             \\
        const char* pe = pf + pn;                                                           \\
        Py_ssize_t u = 0;                                                                   \\
        for (; u + 3 <= C; u += 3) CD_XCOLS(T, 3)                                           \\
        if (C - u == 2) CD_XCOLS(T, 2)                                                      \\
        else if (C - u == 1) CD_XCOLS(T, 1)                                                 \\
        for (Py_ssize_t q = 0; q < W; q++)                                                  \\
            for (u = 0; u < C; u++) out[q * C + u] = res[u * rs + q];                       \\
    }
    CD_XROW(float)
    CD_XROW(double)
    /* Groups of 4 input and 4 output channels (so C == O), x not expanded: a vector of outputs
       holds whole groups, lane l = 4g + u; x's vector at the same channels, rotated by s
       within each group (lane l reads x[4g + (u + s) % 4]), times w's lanes rotated the same
       way (wr[i, j, s, l] = w[i, j, (u + s) % 4, l]) and summed over s < 4, is the group's
       4 x 4 product. The output row y (OW pixels): the sums, then the bias (NULL: none) and
       ReLU when relu as CD_STORE adds them, one store; the row taps rt[2a] (cell), rt[2a + 1]
       (tap) for a < mi, the column taps of pixel q: cn[q] from cell ct[2*KW*q], tap
       ct[2*KW*q + 1], cells dil apart. Four vectors at a time, each with two sums (the
       rotations' FMAs are not one chain). */
    #define CD_R8(s) ((s) & 3), ((1 + (s)) & 3), ((2 + (s)) & 3), ((3 + (s)) & 3),             \\
                     4 + ((s) & 3), 4 + ((1 + (s)) & 3), 4 + ((2 + (s)) & 3), 4 + ((3 + (s)) & 3)
    #define CD_R4(s) ((s) & 3), ((1 + (s)) & 3), ((2 + (s)) & 3), ((3 + (s)) & 3)
    typedef long long cd_vlong __attribute__((vector_size(32)));
    #if defined(__clang__)
    #define CD_ROT_float(v, s) __builtin_shufflevector(v, v, CD_R8(s))
    #define CD_ROT_double(v, s) __builtin_shufflevector(v, v, CD_R4(s))
    #else
    #define CD_ROT_float(v, s) __builtin_shuffle(v, (cd_vint){CD_R8(s)})
    #define CD_ROT_double(v, s) __builtin_shuffle(v, (cd_vlong){CD_R4(s)})
    #endif
    #define CD_ROT4_BLOCK(T, K) {                                                           \\
        V s0[K], s1[K];                                                                     \\
        for (int u = 0; u < K; u++) s0[u] = s1[u] = (V){0};                                 \\
        for (Py_ssize_t a = 0; a < mi; a++) {                                               \\
            const T* xp = x + rt[2 * a] * xr + c0 * O + k;                                  \\
            const T* wp = w + rt[2 * a + 1] * wr + j0 * 4 * O + k;                          \\
            for (Py_ssize_t t = 0; t < m; t++, xp += cs, wp += 4 * O)                       \\
                for (int u = 0; u < K; u++) {                                               \\
                    const V xv = *(const V*)(xp + u * L);                                   \\
                    s0[u] += xv * *(const V*)(wp + u * L);                                  \\
                    s1[u] += CD_ROT_##T(xv, 1) * *(const V*)(wp + O + u * L);               \\
                    s0[u] += CD_ROT_##T(xv, 2) * *(const V*)(wp + 2 * O + u * L);           \\
                    s1[u] += CD_ROT_##T(xv, 3) * *(const V*)(wp + 3 * O + u * L);           \\
                }                                                                           \\
        }                                                                                   \\
        for (int u = 0; u < K; u++) {                                                       \\
            V v = s0[u] + s1[u];                                                            \\
            CD_BIAS_RELU(v, k + u * L)                                                      \\
            *(V*)(y + k + u * L) = v;                                                       \\
        }                                                                                   \\
    }
    #define CD_ROT4(T)                                                                      \\
    FC_CLONES static void cd_rot4_##T(Py_ssize_t O, Py_ssize_t OW, Py_ssize_t mi,           \\
            const Py_ssize_t* rt, const T* x, Py_ssize_t xr, const T* w, Py_ssize_t wr,     \\
            const Py_ssize_t* ct, const Py_ssize_t* cn, Py_ssize_t KW, Py_ssize_t dil,      \\
            const T* bias, int relu, T* y) {                                                \\
        typedef cd_v##T V;                                                                  \\
        const Py_ssize_t L = 32 / sizeof(T), cs = dil * O;                                  \\
        for (Py_ssize_t q = 0; q < OW; q++, y += O) {                                       \\
            const Py_ssize_t m = cn[q], c0 = ct[2 * KW * q], j0 = ct[2 * KW * q + 1];       \\
            Py_ssize_t k = 0;                                                               \\
            for (; k + 4 * L <= O; k += 4 * L) CD_ROT4_BLOCK(T, 4)                          \\
            for (; k < O; k += L) CD_ROT4_BLOCK(T, 1)                                       \\
        }                                                                                   \\
    }
    CD_ROT4(float)
    CD_ROT4(double)
    /* The weight gradient of cd_rot4's layers, in its rotated layout: g[i, j, s, l] += the sum
       over the output row gy (pixels q in [reach[2j], reach[2j + 1])) of x's lanes at the cell
       q*sw - pl + j*dil of row rt[2a] rotated by s, times gy[q, l] (row taps a < mi, tap
       i = rt[2a + 1]): 4 sums of 2 vectors in registers over the row, a channel strip
       (2 lines a pixel) of gy and x's rows staying in L1 over every tap. */
    #define CD_WROT4_BLOCK(T, K) {                                                          \\
        for (Py_ssize_t a = 0; a < mi; a++)                                                 \\
            for (Py_ssize_t j = 0; j < KW; j++) {                                           \\
                V s[4][K];                                                                  \\
                for (int r = 0; r < 4; r++)                                                 \\
                    for (int u = 0; u < K; u++) s[r][u] = (V){0};                           \\
                const T* xp = x + rt[2 * a] * xr + (reach[2 * j] * sw - pl + j * dil) * O + k; \\
                const T* gp = gy + reach[2 * j] * O + k;                                    \\
                for (Py_ssize_t q = reach[2 * j]; q < reach[2 * j + 1]; q++, xp += xs, gp += O) \\
                    for (int u = 0; u < K; u++) {                                           \\
                        const V xv = *(const V*)(xp + u * L), gv = *(const V*)(gp + u * L); \\
                        s[0][u] += xv * gv;                                                 \\
                        s[1][u] += CD_ROT_##T(xv, 1) * gv;                                  \\
                        s[2][u] += CD_ROT_##T(xv, 2) * gv;                                  \\
                        s[3][u] += CD_ROT_##T(xv, 3) * gv;                                  \\
                    }                                                                       \\
                T* gp4 = g + (rt[2 * a + 1] * KW + j) * 4 * O + k;                          \\
                for (int r = 0; r < 4; r++)                                                 \\
                    for (int u = 0; u < K; u++) *(V*)(gp4 + r * O + u * L) += s[r][u];       \\
            }                                                                               \\
    }
    #define CD_WROT4(T)                                                                     \\
    FC_CLONES static void cd_wrot4_##T(Py_ssize_t O, Py_ssize_t mi, const Py_ssize_t* rt,   \\
            const T* x, Py_ssize_t xr, const T* gy, const Py_ssize_t* reach, Py_ssize_t KW, \\
            Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dil, T* g) {                           \\
        typedef cd_v##T V;                                                                  \\
        const Py_ssize_t L = 32 / sizeof(T), xs = sw * O;                                   \\
        Py_ssize_t k = 0;                                                                   \\
        for (; k + 2 * L <= O; k += 2 * L) CD_WROT4_BLOCK(T, 2)                             \\
        for (; k < O; k += L) CD_WROT4_BLOCK(T, 1)                                          \\
    }
    CD_WROT4(float)
    CD_WROT4(double)
    """
    void cd_rot4_float(Py_ssize_t O, Py_ssize_t OW, Py_ssize_t mi, const Py_ssize_t* rt,
                       const float* x, Py_ssize_t xr, const float* w, Py_ssize_t wr,
                       const Py_ssize_t* ct, const Py_ssize_t* cn, Py_ssize_t KW, Py_ssize_t dil,
                       const float* bias, int relu, float* y) noexcept nogil
    void cd_rot4_double(Py_ssize_t O, Py_ssize_t OW, Py_ssize_t mi, const Py_ssize_t* rt,
                        const double* x, Py_ssize_t xr, const double* w, Py_ssize_t wr,
                        const Py_ssize_t* ct, const Py_ssize_t* cn, Py_ssize_t KW,
                        Py_ssize_t dil, const double* bias, int relu, double* y) noexcept nogil
    void cd_wrot4_float(Py_ssize_t O, Py_ssize_t mi, const Py_ssize_t* rt, const float* x,
                        Py_ssize_t xr, const float* gy, const Py_ssize_t* reach, Py_ssize_t KW,
                        Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dil, float* g) noexcept nogil
    void cd_wrot4_double(Py_ssize_t O, Py_ssize_t mi, const Py_ssize_t* rt, const double* x,
                         Py_ssize_t xr, const double* gy, const Py_ssize_t* reach, Py_ssize_t KW,
                         Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dil, double* g) noexcept nogil
    void cd_bcast_float(Py_ssize_t n, Py_ssize_t m, const float* a, Py_ssize_t a_step,
                        const float* b, Py_ssize_t b_step, float* out) noexcept nogil
    void cd_bcast_double(Py_ssize_t n, Py_ssize_t m, const double* a, Py_ssize_t a_step,
                         const double* b, Py_ssize_t b_step, double* out) noexcept nogil
    void cd_tile_float(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi, Py_ssize_t m, const float* a,
                       Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t, const float* b,
                       Py_ssize_t b_r, Py_ssize_t b_t, float* out, Py_ssize_t o_p,
                       int acc, const float* bias,
                       int relu) noexcept nogil
    void cd_tile_double(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi, Py_ssize_t m, const double* a,
                        Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t, const double* b,
                        Py_ssize_t b_r, Py_ssize_t b_t, double* out, Py_ssize_t o_p,
                        int acc, const double* bias,
                        int relu) noexcept nogil
    void cd_vtile_float(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi, Py_ssize_t m, const float* a,
                        Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t, const float* b,
                        Py_ssize_t b_r, Py_ssize_t b_t, float* out, Py_ssize_t o_p,
                        int acc, const float* bias,
                        int relu) noexcept nogil
    void cd_vtile_double(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi, Py_ssize_t m,
                         const double* a, Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t,
                         const double* b, Py_ssize_t b_r, Py_ssize_t b_t, double* out,
                         Py_ssize_t o_p, int acc, const double* bias,
                         int relu) noexcept nogil
    void cd_tdot_float(Py_ssize_t n, Py_ssize_t P, Py_ssize_t nc, Py_ssize_t mi, Py_ssize_t m,
                       const float* a, Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t,
                       const float* b, Py_ssize_t b_c, Py_ssize_t b_r, Py_ssize_t b_t,
                       float* out, Py_ssize_t o_p) noexcept nogil
    void cd_tdot_double(Py_ssize_t n, Py_ssize_t P, Py_ssize_t nc, Py_ssize_t mi, Py_ssize_t m,
                        const double* a, Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t,
                        const double* b, Py_ssize_t b_c, Py_ssize_t b_r, Py_ssize_t b_t,
                        double* out, Py_ssize_t o_p) noexcept nogil
    void fc_stream(char* dst, const char* src, Py_ssize_t n) noexcept nogil
    void cd_gemm_float_v32(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t R, Py_ssize_t Q, const float* a,
                           Py_ssize_t a_r, Py_ssize_t a_q, const Py_ssize_t* off, const float* b,
                           Py_ssize_t b_r, Py_ssize_t b_q, float* out, Py_ssize_t o_t,
                           const char* pf, Py_ssize_t pn) noexcept nogil
    void cd_gemm_float_v64(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t R, Py_ssize_t Q, const float* a,
                           Py_ssize_t a_r, Py_ssize_t a_q, const Py_ssize_t* off, const float* b,
                           Py_ssize_t b_r, Py_ssize_t b_q, float* out, Py_ssize_t o_t,
                           const char* pf, Py_ssize_t pn) noexcept nogil
    void cd_gemm_double_v32(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t R, Py_ssize_t Q,
                            const double* a, Py_ssize_t a_r, Py_ssize_t a_q, const Py_ssize_t* off,
                            const double* b, Py_ssize_t b_r, Py_ssize_t b_q, double* out,
                            Py_ssize_t o_t, const char* pf, Py_ssize_t pn) noexcept nogil
    void cd_gemm_double_v64(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t R, Py_ssize_t Q,
                            const double* a, Py_ssize_t a_r, Py_ssize_t a_q, const Py_ssize_t* off,
                            const double* b, Py_ssize_t b_r, Py_ssize_t b_q, double* out,
                            Py_ssize_t o_t, const char* pf, Py_ssize_t pn) noexcept nogil
    int fc_wide() noexcept nogil
    void cd_dot_float(Py_ssize_t n, Py_ssize_t m, const float* a, Py_ssize_t a_step,
                      const float* b, Py_ssize_t b_step, float* out) noexcept nogil
    void cd_dot_double(Py_ssize_t n, Py_ssize_t m, const double* a, Py_ssize_t a_step,
                       const double* b, Py_ssize_t b_step, double* out) noexcept nogil
    void cd_trow_float(Py_ssize_t OW, Py_ssize_t O, const float* src, Py_ssize_t sq, float* dst,
                       Py_ssize_t ld, Py_ssize_t off) noexcept nogil
    void cd_trow_double(Py_ssize_t OW, Py_ssize_t O, const double* src, Py_ssize_t sq,
                        double* dst, Py_ssize_t ld, Py_ssize_t off) noexcept nogil
    void cd_xrow_float(Py_ssize_t mi, const float* g, Py_ssize_t gs, const Py_ssize_t* sl,
                       const float* w, Py_ssize_t wi, const Py_ssize_t* tp, Py_ssize_t KW,
                       Py_ssize_t C, Py_ssize_t O, Py_ssize_t ld, Py_ssize_t W, float* res,
                       float* out, const char* pf, Py_ssize_t pn) noexcept nogil
    void cd_xrow_double(Py_ssize_t mi, const double* g, Py_ssize_t gs, const Py_ssize_t* sl,
                        const double* w, Py_ssize_t wi, const Py_ssize_t* tp, Py_ssize_t KW,
                        Py_ssize_t C, Py_ssize_t O, Py_ssize_t ld, Py_ssize_t W, double* res,
                        double* out, const char* pf, Py_ssize_t pn) noexcept nogil
    void cd_pack_float(Py_ssize_t R, Py_ssize_t Q, Py_ssize_t n, const float* src, Py_ssize_t sr,
                       Py_ssize_t sq, float* dst, Py_ssize_t ld, float* acc) noexcept nogil
    void cd_pack_double(Py_ssize_t R, Py_ssize_t Q, Py_ssize_t n, const double* src,
                        Py_ssize_t sr, Py_ssize_t sq, double* dst, Py_ssize_t ld,
                        double* acc) noexcept nogil
    void cd_rowsum_float(Py_ssize_t P, Py_ssize_t n, const float* src, float* acc) noexcept nogil
    void fc_epilogue_float(Py_ssize_t n, Py_ssize_t O, const float* b, int relu,
                           float* y) noexcept nogil
    void fc_epilogue_double(Py_ssize_t n, Py_ssize_t O, const double* b, int relu,
                            double* y) noexcept nogil
    void cd_rowsum_double(Py_ssize_t P, Py_ssize_t n, const double* src,
                          double* acc) noexcept nogil


AVX512 = bool(fc_wide())   # this CPU runs the weight gradient's 64-byte-vector GEMM


cdef inline Py_ssize_t _vector_bytes(bint wide) noexcept nogil:
    """The weight gradient's GEMM vectors: 64 bytes if ``wide`` (AVX-512), else 32."""
    return 64 if wide else 32


def _whole_vectors(n, itemsize, wide):
    """``n`` elements rounded up to whole vectors of the GEMM."""
    lanes = _vector_bytes(wide) // itemsize
    return -(-n // lanes) * lanes


cdef inline void _bcast(Py_ssize_t n, Py_ssize_t m, const floating* a, Py_ssize_t a_step,
                        const floating* b, Py_ssize_t b_step, floating* out) noexcept nogil:
    if floating is float:
        cd_bcast_float(n, m, a, a_step, b, b_step, out)
    else:
        cd_bcast_double(n, m, a, a_step, b, b_step, out)


cdef inline void _tile(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi, Py_ssize_t m,
                       const floating* a, Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t,
                       const floating* b, Py_ssize_t b_r, Py_ssize_t b_t, floating* out,
                       Py_ssize_t o_p, bint acc, const floating* bias=NULL,
                       bint relu=False) noexcept nogil:
    """Unless ``acc``, ``bias`` (unless NULL) is added and ReLU applied when ``relu`` (as
    ``fc_epilogue``)."""
    if floating is float:
        cd_tile_float(n, P, mi, m, a, a_p, a_r, a_t, b, b_r, b_t, out, o_p, acc, bias, relu)
    else:
        cd_tile_double(n, P, mi, m, a, a_p, a_r, a_t, b, b_r, b_t, out, o_p, acc, bias, relu)


cdef inline void _vtile(Py_ssize_t n, Py_ssize_t P, Py_ssize_t mi, Py_ssize_t m,
                        const floating* a, Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t,
                        const floating* b, Py_ssize_t b_r, Py_ssize_t b_t, floating* out,
                        Py_ssize_t o_p, bint acc) noexcept nogil:
    """:func:`_tile` with ``a[... + k]``: a vector, not a broadcast scalar."""
    if floating is float:
        cd_vtile_float(n, P, mi, m, a, a_p, a_r, a_t, b, b_r, b_t, out, o_p, acc, NULL, 0)
    else:
        cd_vtile_double(n, P, mi, m, a, a_p, a_r, a_t, b, b_r, b_t, out, o_p, acc, NULL, 0)


cdef inline void _rot4(Py_ssize_t O, Py_ssize_t OW, Py_ssize_t mi, const Py_ssize_t* rt,
                        const floating* x, Py_ssize_t xr, const floating* w, Py_ssize_t wr,
                        const Py_ssize_t* ct, const Py_ssize_t* cn, Py_ssize_t KW, Py_ssize_t dil,
                        const floating* bias, bint relu, floating* y) noexcept nogil:
    if floating is float:
        cd_rot4_float(O, OW, mi, rt, x, xr, w, wr, ct, cn, KW, dil, bias, relu, y)
    else:
        cd_rot4_double(O, OW, mi, rt, x, xr, w, wr, ct, cn, KW, dil, bias, relu, y)


cdef inline void _wrot4(Py_ssize_t O, Py_ssize_t mi, const Py_ssize_t* rt, const floating* x,
                        Py_ssize_t xr, const floating* gy, const Py_ssize_t* reach, Py_ssize_t KW,
                        Py_ssize_t sw, Py_ssize_t pl, Py_ssize_t dil, floating* g) noexcept nogil:
    if floating is float:
        cd_wrot4_float(O, mi, rt, x, xr, gy, reach, KW, sw, pl, dil, g)
    else:
        cd_wrot4_double(O, mi, rt, x, xr, gy, reach, KW, sw, pl, dil, g)


cdef inline void _tdot(Py_ssize_t n, Py_ssize_t P, Py_ssize_t nc, Py_ssize_t mi, Py_ssize_t m,
                       const floating* a, Py_ssize_t a_p, Py_ssize_t a_r, Py_ssize_t a_t,
                       const floating* b, Py_ssize_t b_c, Py_ssize_t b_r, Py_ssize_t b_t,
                       floating* out, Py_ssize_t o_p) noexcept nogil:
    if floating is float:
        cd_tdot_float(n, P, nc, mi, m, a, a_p, a_r, a_t, b, b_c, b_r, b_t, out, o_p)
    else:
        cd_tdot_double(n, P, nc, mi, m, a, a_p, a_r, a_t, b, b_c, b_r, b_t, out, o_p)


cdef inline void _gemm(bint wide, Py_ssize_t n, Py_ssize_t nt, Py_ssize_t R, Py_ssize_t Q,
                       const floating* a, Py_ssize_t a_r, Py_ssize_t a_q, const Py_ssize_t* off,
                       const floating* b, Py_ssize_t b_r, Py_ssize_t b_q, floating* out,
                       Py_ssize_t o_t, const char* pf, Py_ssize_t pn) noexcept nogil:
    if floating is float:
        (cd_gemm_float_v64 if wide else cd_gemm_float_v32)(n, nt, R, Q, a, a_r, a_q, off, b, b_r,
                                                           b_q, out, o_t, pf, pn)
    else:
        (cd_gemm_double_v64 if wide else cd_gemm_double_v32)(n, nt, R, Q, a, a_r, a_q, off, b,
                                                             b_r, b_q, out, o_t, pf, pn)


cdef inline void _pack(Py_ssize_t R, Py_ssize_t Q, Py_ssize_t n, const floating* src,
                       Py_ssize_t sr, Py_ssize_t sq, floating* dst, Py_ssize_t ld,
                       floating* acc) noexcept nogil:
    if floating is float:
        cd_pack_float(R, Q, n, src, sr, sq, dst, ld, acc)
    else:
        cd_pack_double(R, Q, n, src, sr, sq, dst, ld, acc)


cdef inline void _dot(Py_ssize_t n, Py_ssize_t m, const floating* a, Py_ssize_t a_step,
                      const floating* b, Py_ssize_t b_step, floating* out) noexcept nogil:
    if floating is float:
        cd_dot_float(n, m, a, a_step, b, b_step, out)
    else:
        cd_dot_double(n, m, a, a_step, b, b_step, out)


cdef inline void _trow(Py_ssize_t OW, Py_ssize_t O, const floating* src, Py_ssize_t sq,
                       floating* dst, Py_ssize_t ld, Py_ssize_t off) noexcept nogil:
    if floating is float:
        cd_trow_float(OW, O, src, sq, dst, ld, off)
    else:
        cd_trow_double(OW, O, src, sq, dst, ld, off)


cdef inline void _xrow(Py_ssize_t mi, const floating* g, Py_ssize_t gs, const Py_ssize_t* sl,
                       const floating* w, Py_ssize_t wi, const Py_ssize_t* tp, Py_ssize_t KW,
                       Py_ssize_t C, Py_ssize_t O, Py_ssize_t ld, Py_ssize_t W, floating* res,
                       floating* out, const char* pf, Py_ssize_t pn) noexcept nogil:
    if floating is float:
        cd_xrow_float(mi, g, gs, sl, w, wi, tp, KW, C, O, ld, W, res, out, pf, pn)
    else:
        cd_xrow_double(mi, g, gs, sl, w, wi, tp, KW, C, O, ld, W, res, out, pf, pn)


cdef inline void _epilogue(Py_ssize_t n, Py_ssize_t O, const floating* b, bint relu,
                           floating* y) noexcept nogil:
    if floating is float:
        fc_epilogue_float(n, O, b, relu, y)
    else:
        fc_epilogue_double(n, O, b, relu, y)


cdef inline void _rowsum(Py_ssize_t P, Py_ssize_t n, const floating* src,
                         floating* acc) noexcept nogil:
    if floating is float:
        cd_rowsum_float(P, n, src, acc)
    else:
        cd_rowsum_double(P, n, src, acc)


cdef inline void _expand(const floating* xr, Py_ssize_t W, Py_ssize_t C, Py_ssize_t Cg,
                         Py_ssize_t Og, Py_ssize_t groups, floating* xe) noexcept nogil:
    """``xe[iw, g*Og + q] = xr[iw*C + g*Cg]`` for a row ``xr`` of W pixels (channel ci added)."""
    cdef Py_ssize_t iw, g, q, O = Og * groups
    cdef floating v
    for iw in range(W):
        for g in range(groups):
            v = xr[iw * C + g * Cg]
            for q in range(Og):
                xe[iw * O + g * Og + q] = v


cdef floating* _expanded_row(const floating* xr, Py_ssize_t key, Py_ssize_t* tags,
                                   Py_ssize_t slots, floating* xe, Py_ssize_t W, Py_ssize_t C,
                                   Py_ssize_t Cg, Py_ssize_t Og, Py_ssize_t groups) noexcept nogil:
    """The row ``xr`` (number ``key`` = n*H + ih) expanded per input channel, ``[Cg, W, O]``, from
    a cache of ``slots`` rows: ``slots`` > the span of one output row's row taps keeps every row
    an output row needs, and a thread's next rows reuse them. Not inline: inlined into the
    weight gradient's band function, its loop ran out of registers (grouped32: 7 % slower)."""
    cdef Py_ssize_t slot = key % slots, ci, size = W * Og * groups
    xe += slot * Cg * size
    if tags[slot] != key:
        for ci in range(Cg):
            _expand(xr + ci, W, C, Cg, Og, groups, xe + ci * size)
        tags[slot] = key
    return xe


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0, clamped at 0 from below."""
    return (a + b - 1) // b if a > 0 else 0


cdef inline Py_ssize_t _step(const Py_ssize_t[:, :, ::1] tab, Py_ssize_t q, Py_ssize_t cnt,
                             Py_ssize_t col) noexcept nogil:
    """The even spacing of column ``col`` (cell 0, tap 1) over the ``cnt`` taps of ``tab[q]``."""
    return (tab[q, cnt - 1, col] - tab[q, 0, col]) // (cnt - 1) if cnt > 1 else 0


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups, b=None, relu=False):
    """``y[n, oh, ow, o]`` = sum over taps ``(i, j)`` and the group's input channels ``c`` of
    ``x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, g*Cg + c] * w[i, j, c, o]`` (+ ``b[o]``,
    then ReLU when ``relu``: in the register tiles that hold whole sums, else each row while it
    is in cache).

    x ``(N, H, W, C)``, w ``(KH, KW, C // groups, O)``, y ``(N, OH, OW, O)`` (overwritten), b
    ``(O,)`` or None.
    """
    op = "conv_direct.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    sh, sw, pt, pl, dil_h, dil_w, groups = _checks.conv(op, x, w, y, "x", "y", sh, sw, pt, pl,
                                                        dil_h, dil_w, groups)
    _checks.bias(op, b, y)
    if not y.size:
        return
    threads = max(1, get_max_threads())
    rot = _rotations(w, groups)
    expanded = rot is None and y.shape[3] // groups < WIDE
    xe, tags = _row_cache(threads, w.shape[0], dil_h, x.shape[1], x.shape[2], w.shape[2],
                          y.shape[3], expanded, y.dtype)
    stage = np.empty((threads, y.shape[2] * y.shape[3]) if streamed(y.nbytes, _NT) else (0, 0),
                     y.dtype)
    _forward(x, w, y, _taps(y.shape[1], w.shape[0], sh, pt, dil_h, x.shape[1], False),
             _taps(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False), sw, dil_w, groups,
             xe, tags, expanded, stage, np.empty(0, y.dtype) if b is None else b, b is not None,
             bool(relu), w if rot is None else np.ascontiguousarray(w[:, :, rot[0], rot[1]]),
             rot is not None)


def _rotations(w, groups):
    """For groups of 4 input and 4 output channels filling whole vectors (ResNeXt's 32x4d):
    the index ``(c, o)`` with ``c[s, o] = (o % 4 + s) % 4``, so that ``w[:, :, c, o]`` is
    ``wr[i, j, s, o] = w[i, j, (o % 4 + s) % 4, o]``, the weights ``cd_rot4`` multiplies x's
    lanes rotated by s with (grouped32's forward 0.37x its expanded time), and
    ``gw[:, :, c, o] = gwr`` takes ``cd_wrot4``'s gradient back; else None."""
    O = w.shape[3]
    if w.shape[2] != 4 or O != 4 * groups or O % (32 // w.itemsize):
        return None
    lanes = np.arange(O)
    return (np.arange(4)[:, None] + lanes % 4) % 4, lanes


def _row_cache(threads, kh, dil_h, height, width, cg, o, expanded, dtype):
    """Per thread, ``(kh - 1)*dil_h + 1`` expanded rows ``[Cg, W, O]`` (none unless
    ``expanded``) and their tags (-1: empty). No more than the ``height`` rows of an image (a
    huge dilation must not allocate rows that do not exist; each row is used as soon as it is
    fetched, so fewer slots only cost reuse)."""
    slots = max(1, min((kh - 1) * dil_h + 1, height)) if expanded else 1
    return (np.empty((threads, slots * cg * width if expanded else 0, o), dtype),
            np.full((threads, slots), -1, np.intp))


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups):
    """Gradient of :func:`forward` with respect to x, into ``gx`` (N, H, W, C), overwritten."""
    op = "conv_direct.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    sh, sw, pt, pl, dil_h, dil_w, groups = _checks.conv(op, gx, w, gy, "gx", "gy", sh, sw, pt,
                                                        pl, dil_h, dil_w, groups)
    if not gx.size:
        return
    rows = _taps(gx.shape[1], w.shape[0], sh, pt, dil_h, gy.shape[1], True)
    cols = _taps(gx.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True)
    if w.shape[2] < WIDE and w.shape[3] // groups >= 8 and groups == 1 and sw == 1 and dil_w == 1:
        # per thread: a ring of the rows of gy one input row reads (:func:`_ring`); the taps
        # of one row. The small per-thread arrays end in a spare cache line: two threads
        # writing one line would make every row wait on the other's writes (2 threads ran
        # 1.35x instead of 1.8x)
        threads = max(1, get_max_threads())
        slots = max(1, min((w.shape[0] - 1) * dil_h + 1, gy.shape[1]))
        gt, sft = _ring(threads, slots, gy.shape[3], gx.shape[2], w.shape[1], pl, gx.dtype)
        _backward_input_lanes(gy, w, gx, rows, pl, gt, sft,
                              np.full((threads, slots + 8), -1, np.intp),
                              np.empty((threads, gx.shape[3] * gt.shape[3] + 16), gx.dtype),
                              np.empty((threads, 2, w.shape[0] + 8), np.intp))
    elif w.shape[2] < WIDE and w.shape[3] // groups >= 8:
        _backward_input_tdot(gy, w, gx, rows, cols, sw, groups)
    elif w.shape[2] < WIDE:
        adj = _adjoint.as_forward(w, gx.shape[1:3], gy.shape[1:3], sh, sw, pt, pl, dil_h, dil_w,
                                  groups)
        if adj:
            forward(gy, adj[0], gx, 1, 1, adj[1], adj[2], dil_h, dil_w, groups)
        else:
            acc = np.empty((max(1, get_max_threads()), w.shape[2], w.shape[3]), gx.dtype)
            _backward_input_dot(gy, w, gx, rows, cols, groups, acc)
    else:
        # w as (KH, KW, O, Cg): the innermost loop then runs over contiguous input channels
        _backward_input_bcast(gy, np.ascontiguousarray(w.transpose(0, 1, 3, 2)), gx, rows, cols,
                              groups)


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
    threads = max(1, get_max_threads())
    parts = np.zeros((threads,) + gw.shape, gw.dtype)
    bias = _checks.bias_grad(op, gb, gy)
    bparts = np.zeros((threads, gy.shape[3] + 16 if bias else 0), gw.dtype)   # + a spare line
    band = _band(gy.shape[1], gy.shape[2], gy.shape[3], gy.itemsize)
    # per thread, a band of one group's gy for the GEMM, rows padded to whole aligned vectors
    wide = AVX512
    ld = _whole_vectors(gy.shape[3] // groups, gy.itemsize, wide)
    packed = np.empty((threads, band * gy.shape[2] * ld + 64 // gy.itemsize), gw.dtype)
    rot = _rotations(gw, groups)
    if gy.size and x.size:
        expanded = rot is None and gw.shape[3] // groups < WIDE
        xe, tags = _row_cache(threads, gw.shape[0], dil_h, x.shape[1], x.shape[2], gw.shape[2],
                              gw.shape[3], expanded, gw.dtype)
        _backward_weight(gy, x, parts, _taps(gy.shape[1], gw.shape[0], sh, pt, dil_h,
                                             x.shape[1], False),
                         sh, sw, pt, pl, dil_h, dil_w, groups, xe, tags, expanded,
                         band, bparts, bias, packed, ld, rot is not None, wide)
    if rot is None:
        np.sum(parts, axis=0, out=gw)
    else:
        gw[:, :, rot[0], rot[1]] = parts.sum(axis=0)
    if bias:
        np.sum(bparts[:, :gy.shape[3]], axis=0, out=gb)


def backward(gy, x, w, gx, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=None):
    """Gradients of :func:`forward`: into ``gx`` (N, H, W, C) with respect to x (None: not
    computed), ``gw`` ``(KH, KW, C // groups, O)`` with respect to w, both overwritten, and the
    bias's, gy summed over its pixels, into ``gb`` ``(O,)`` unless None. Few input channels,
    one group, unit column stride and dilation, ``O >= WIDE``: one pass over gy
    (:func:`_backward_fused`; each band read once for both gradients); otherwise
    :func:`backward_input` and :func:`backward_weight`."""
    op = "conv_direct.backward"
    bias = _checks.gradients(op, gy, x, w, gx, gw, gb)
    sh, sw, pt, pl, dil_h, dil_w, groups = _checks.conv(op, x, w, gy, "x", "gy", sh, sw, pt, pl,
                                                        dil_h, dil_w, groups)
    (n, h, wd, c), (kh, kw, _, o), (oh, ow) = x.shape, w.shape, gy.shape[1:3]
    if (gx is None or not gy.size or not x.size or c >= WIDE or o < WIDE or groups != 1
            or sw != 1 or dil_w != 1):
        if gx is not None:
            backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups)
        backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=gb)
        return
    threads = max(1, get_max_threads())
    band = _band(oh, ow, o, gy.itemsize)
    # tasks (image, chunk of bands): a few per thread at least
    nch = 1 if threads == 1 else min(-(-oh // band), -(-4 * threads // n))
    rows_x = _taps(h, kh, sh, pt, dil_h, oh, True)
    order, bstart, chunks, slots = _plan(h, oh, kh, sh, pt, dil_h, band, nch)
    wide = AVX512
    ld = _whole_vectors(o, gy.itemsize, wide)
    gt, sft = _ring(threads, slots, o, wd, kw, pl, gw.dtype)
    parts = np.zeros((threads,) + gw.shape, gw.dtype)
    bparts = np.zeros((threads, o + 16 if bias else 0), gw.dtype)   # + a spare line
    xe, tags = _row_cache(threads, kh, dil_h, h, wd, c, o, False, gw.dtype)
    _backward_fused(gy, x, w, gx, parts, _taps(oh, kh, sh, pt, dil_h, h, False), rows_x, sh, pt,
                    pl, dil_h, band, order, bstart, chunks, bparts, bias,
                    np.empty((threads, band * ow * ld + 64 // gy.itemsize), gw.dtype), ld,
                    gt, sft, np.empty((threads, c * gt.shape[3] + 16), gw.dtype),
                    np.empty((threads, 2, kh + 8), np.intp), xe, tags, wide)
    np.sum(parts, axis=0, out=gw)
    if bias:
        np.sum(bparts[:, :o], axis=0, out=gb)


@functools.lru_cache(maxsize=64)
def _plan(h, oh, kh, sh, pt, dil_h, band, nch):
    """The one-pass backward's row plan: input row ``order[i]``, ``bstart[b] <= i <
    bstart[b + 1]``, runs after band b, which holds the highest row of gy it reads (rows that
    read none: band 0); chunk c runs the bands ``[chunks[c, 0], chunks[c, 1])``, after
    transposing the earlier rows ``[chunks[c, 2], band start)`` its input rows read; ``slots``
    rows of the ring hold a band's rows and the earlier ones its input rows read. Cached per
    geometry (read-only arrays)."""
    nb = -(-oh // band)
    rt, rn = _taps(h, kh, sh, pt, dil_h, oh, True)
    lo = rt[np.arange(h), np.maximum(rn - 1, 0), 0]
    owner = np.where(rn > 0, rt[:, 0, 0] // band, 0)
    order = np.argsort(owner, kind="stable").astype(np.intp)
    bstart = np.searchsorted(owner[order], np.arange(nb + 1)).astype(np.intp)
    slots = max(1, int(np.max(np.where(rn > 0, np.minimum(oh, (owner + 1) * band) - lo, 1))))
    chunks = np.zeros((nch, 3), np.intp)
    for c in range(nch):
        b0, b1 = c * nb // nch, (c + 1) * nb // nch
        mine = (rn > 0) & (owner >= b0) & (owner < b1)
        chunks[c] = b0, b1, min([b0 * band] + list(lo[mine]))
    order.flags.writeable = bstart.flags.writeable = chunks.flags.writeable = False
    return order, bstart, chunks, slots


def _ring(threads, slots, o, width, kw, pl, dtype):
    """Per thread, ``slots`` rows of gy with their pixels in lanes, ``gt[tid, slot, o, col]``:
    column ow of gy at ``col = sft + kw - 1 - pl + ow``, zeros either side (the input
    gradient's columns in whole vectors and kw - 1 more); ``sft`` < a vector puts ow = 0 on a
    32-byte boundary (rows of whole vectors, a 64-byte aligned array): the transposition stores
    whole vectors, none straddling cache lines. Returns gt, sft."""
    itemsize = np.dtype(dtype).itemsize
    lanes = 32 // itemsize
    sft = (pl - kw + 1) % lanes
    ld = -(-(sft + -(-width // lanes) * lanes + kw - 1) // lanes) * lanes
    size = threads * slots * o * ld
    buf = np.zeros(size + 64 // itemsize, dtype)
    s = (-buf.ctypes.data % 64) // itemsize
    return buf[s:s + size].reshape(threads, slots, o, ld), sft


def _band(oh, ow, o, itemsize):
    """Output rows per band of the weight gradient: about 16 KiB of gy, which the GEMM's taps
    re-read from cache (cifar1: 2 rows ran 5-20 % faster than 4 to 30)."""
    return max(1, min(oh, 16384 // max(1, ow * o * itemsize)))


# ------------------------------------------------------------------------------------ kernels
def _forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
             floating[:, :, :, ::1] y, rows, cols, Py_ssize_t sw, Py_ssize_t dil_w,
             Py_ssize_t groups, floating[:, :, ::1] xe, Py_ssize_t[:, ::1] tags, bint expanded,
             floating[:, ::1] stage, const floating[::1] b, bint bias, bint relu,
             const floating[:, :, :, ::1] wr, bint rotated):
    """Task ``(n, r)`` computes the output row ``y[n, r]``, in its thread's row of ``stage``
    when that has any (then streams it to y), else in place, with its epilogue (``b`` when
    ``bias``, ReLU when ``relu``): in the tiles that sum every tap at once (cifar1's forward
    0.77-0.84x its time with a pass over the row after them), else over the row while it is in
    cache."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], KW = w.shape[1]
    cdef Py_ssize_t Cg = w.shape[2], O = w.shape[3], OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t Og = O // groups
    cdef Py_ssize_t t, n, r, q, a, i, m, mi, q0, q1, done
    cdef floating* yr
    cdef floating* e
    # the output columns whose column taps are all real: [q0, q1)
    q0 = q1 = 0
    for q in range(OW):
        if cn[q] == KW:
            q0 = q if q0 == q1 else q0
            q1 = q + 1
    with nogil:
        # each (n, r) owns the output row y[n, r]
        for t in prange(y.shape[0] * OH, schedule="static", num_threads=xe.shape[0]):
            n = t // OH
            r = t - n * OH
            yr = &stage[threadid(), 0] if stage.shape[0] else &y[n, r, 0, 0]
            mi = rn[r]
            done = 0    # columns [q0, done) had their epilogue in the tiles
            if rotated:
                # x's rotated lanes (groups of 4 channels), the epilogue in the sums
                _rot4(O, OW, mi, &rt[r, 0, 0], &x[n, 0, 0, 0], W * C, &wr[0, 0, 0, 0],
                      KW * 4 * O, &ct[0, 0, 0], &cn[0], KW, dil_w, &b[0] if bias else NULL, relu,
                      yr)
            elif mi == 0:
                memset(yr, 0, OW * O * sizeof(floating))
            elif expanded:
                # the rows expanded over all O, xe[a, ci, iw, o] = x[ih_a, iw, (o // Og)*Cg + ci],
                # then register tiles of pixels x channels, row tap by row tap
                for a in range(mi):
                    i = rt[r, a, 1]
                    e = _expanded_row(&x[n, rt[r, a, 0], 0, 0], n * H + rt[r, a, 0],
                                      &tags[threadid(), 0], tags.shape[1], &xe[threadid(), 0, 0],
                                      W, C, Cg, Og, groups)
                    if q0 < q1:
                        _vtile(O, q1 - q0, Cg, KW, e + ct[q0, 0, 0] * O, sw * O,
                               W * O, dil_w * O, &w[i, 0, 0, 0], O, Cg * O, yr + q0 * O, O, a > 0)
                    for q in range(OW):
                        m = cn[q]
                        if q0 <= q < q1:
                            continue
                        if a == 0:
                            memset(yr + q * O, 0, O * sizeof(floating))
                        if m:
                            _vtile(O, 1, Cg, m, e + ct[q, 0, 0] * O, 0, W * O,
                                   _step(ct, q, m, 0) * O, &w[i, ct[q, 0, 1], 0, 0], O,
                                   _step(ct, q, m, 1) * Cg * O, yr + q * O, 0, True)
            else:
                # broadcast: columns [q0, q1) in register tiles over every row tap at once (y
                # written once), the others tap by tap
                # the epilogue of columns [q0, q1) in the tiles, the others' after
                done = _broadcast_row(x, w, yr, n, r, rt, ct, cn, mi, q0, q1, sw, dil_w, groups,
                                      &b[0] if bias else NULL, relu)
            if (bias or relu) and not rotated:
                if done:
                    _epilogue(q0, O, &b[0] if bias else NULL, relu, yr)
                _epilogue(OW - done, O, &b[0] if bias else NULL, relu, yr + done * O)
            if stage.shape[0]:
                fc_stream(<char*>&y[n, r, 0, 0], <const char*>yr, OW * O * sizeof(floating))


cdef Py_ssize_t _broadcast_row(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                         floating* yr, Py_ssize_t n, Py_ssize_t r,
                         const Py_ssize_t[:, :, ::1] rt, const Py_ssize_t[:, :, ::1] ct,
                         const Py_ssize_t[::1] cn, Py_ssize_t mi, Py_ssize_t q0, Py_ssize_t q1,
                         Py_ssize_t sw, Py_ssize_t dil_w, Py_ssize_t groups, const floating* bias,
                         bint relu) noexcept nogil:
    """The output row ``yr`` of task ``(n, r)`` (``mi`` > 0 row taps), not expanded. Returns
    q1 when the tiles of the columns ``[q0, q1)`` added ``bias`` (unless NULL) and applied ReLU
    (when ``relu``), the epilogue left to the columns ``[0, q0)`` and ``[q1, OW)``, else 0."""
    cdef Py_ssize_t W = x.shape[2], C = x.shape[3], KW = w.shape[1], Cg = w.shape[2]
    cdef Py_ssize_t O = w.shape[3], OW = cn.shape[0], Og = O // groups
    cdef Py_ssize_t q, a, b, j, g
    cdef Py_ssize_t ar = _step(rt, r, mi, 0) * W * C
    cdef const floating* xr = &x[n, rt[r, 0, 0], 0, 0]
    cdef const floating* wr = &w[rt[r, 0, 1], 0, 0, 0]
    if q0 < q1 and groups == 1 and dil_w == 1:
        # the taps (j, c) of a row are consecutive in both x and w
        _tile(O, q1 - q0, mi, KW * C, xr + ct[q0, 0, 0] * C, sw * C, ar, 1, wr,
              KW * C * O, O, yr + q0 * O, O, False, bias, relu)
    elif q0 < q1:
        for j in range(KW):
            for g in range(groups):
                _tile(Og, q1 - q0, mi, Cg, xr + ct[q0, j, 0] * C + g * Cg, sw * C, ar, 1,
                      wr + j * Cg * O + g * Og, KW * Cg * O, O, yr + q0 * O + g * Og, O,
                      j > 0)
    for q in range(OW):
        if q0 <= q < q1:
            continue
        memset(yr + q * O, 0, O * sizeof(floating))
        for a in range(mi):
            for b in range(cn[q]):
                for g in range(groups):
                    _bcast(Og, Cg, &x[n, rt[r, a, 0], ct[q, b, 0], g * Cg], 1,
                           &w[rt[r, a, 1], ct[q, b, 1], 0, g * Og], O,
                           yr + q * O + g * Og)
    return q1 if q0 < q1 and groups == 1 and dil_w == 1 else 0


def _backward_input_lanes(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                          floating[:, :, :, ::1] gx, rows, Py_ssize_t pl,
                          floating[:, :, :, ::1] gt, Py_ssize_t sft, Py_ssize_t[:, ::1] tags,
                          floating[:, ::1] res, Py_ssize_t[:, :, ::1] tab):
    """Few input channels, one group, unit column stride and dilation: task ``(n, r)`` computes
    the input row ``gx[n, r]`` with its pixels in lanes (``cd_xrow``: register tiles of
    channels x vectors of columns, summed over every tap and output channel), from its rows of
    gy transposed into the thread's ring (:func:`_ring`; ``tags``: the
    row ``n*OH + oh`` each slot holds, -1: none); no per-cell lane sums, no border cases."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3], KW = w.shape[1]
    cdef Py_ssize_t O = w.shape[3], OH = gy.shape[1], OW = gy.shape[2], ld = gt.shape[3]
    cdef Py_ssize_t slots = gt.shape[1], t, n, r, a, key, slot, tid, pn
    cdef const char* pf
    with nogil:
        # gather: each (n, r) owns the input row gx[n, r]
        for t in prange(gx.shape[0] * H, schedule="static", num_threads=gt.shape[0]):
            n = t // H
            r = t - n * H
            tid = threadid()
            if rn[r] == 0:
                memset(&gx[n, r, 0, 0], 0, W * C * sizeof(floating))
                continue
            for a in range(rn[r]):
                key = n * OH + rt[r, a, 0]
                slot = key % slots
                tab[tid, 0, a] = slot
                tab[tid, 1, a] = rt[r, a, 1]
                if tags[tid, slot] != key:
                    _trow(OW, O, &gy[n, rt[r, a, 0], 0, 0], O, &gt[tid, slot, 0, 0], ld,
                          sft + KW - 1 - pl)
                    tags[tid, slot] = key
            # the next task's first row tap (its highest row of gy), unless in the ring
            pf = NULL
            pn = 0
            if t + 1 < gx.shape[0] * H and rn[(t + 1) % H]:
                key = ((t + 1) // H) * OH + rt[(t + 1) % H, 0, 0]
                if tags[tid, key % slots] != key:
                    pf = <const char*>&gy[(t + 1) // H, rt[(t + 1) % H, 0, 0], 0, 0]
                    pn = OW * O * sizeof(floating)
            _xrow(rn[r], &gt[tid, 0, 0, sft], O * ld, &tab[tid, 0, 0], &w[0, 0, 0, 0], KW * C * O,
                  &tab[tid, 1, 0], KW, C, O, ld, W, &res[tid, 0], &gx[n, r, 0, 0], pf, pn)


def _backward_input_tdot(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                         floating[:, :, :, ::1] gx, rows, cols, Py_ssize_t sw,
                         Py_ssize_t groups):
    """Few input channels per group, many output channels: each ``gx`` cell is a dot product
    over the taps and the group's output channels, blocks of cells of a row (stride 1) x input
    channels at a time."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3], KW = w.shape[1]
    cdef Py_ssize_t Cg = w.shape[2], O = w.shape[3], OW = gy.shape[2], Og = O // groups
    cdef Py_ssize_t t, n, r, q, m, mi, ci, g, ar, br, q0 = 0, q1 = 0, P
    # with stride 1 the columns [q0, q1) read every column tap, each one column further on
    if sw == 1:
        for q in range(W):
            if cn[q] == KW:
                q0 = q if q0 == q1 else q0
                q1 = q + 1
    with nogil:
        # gather: each (n, r) owns the input row gx[n, r]
        for t in prange(gx.shape[0] * H, schedule="static"):
            n = t // H
            r = t - n * H
            mi = rn[r]
            if mi == 0:
                memset(&gx[n, r, 0, 0], 0, W * C * sizeof(floating))
                continue
            ar = _step(rt, r, mi, 0) * OW * O
            br = _step(rt, r, mi, 1) * KW * Cg * O
            q = 0
            while q < W:
                m = cn[q]
                P = q1 - q0 if q == q0 and q0 < q1 else 1
                if m == 0:
                    memset(&gx[n, r, q, 0], 0, C * sizeof(floating))
                else:
                    for g in range(groups):
                        _tdot(Og, P, Cg, mi, m, &gy[n, rt[r, 0, 0], ct[q, 0, 0], g * Og], O, ar,
                              _step(ct, q, m, 0) * O, &w[rt[r, 0, 1], ct[q, 0, 1], 0, g * Og], O,
                              br, _step(ct, q, m, 1) * Cg * O, &gx[n, r, q, g * Cg], C)
                q = q + P


def _backward_input_dot(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                        floating[:, :, :, ::1] gx, rows, cols, Py_ssize_t groups,
                        floating[:, :, ::1] acc):
    """Few input channels per group: ``acc[c, o]`` sums ``gy[o] * w[tap, c, o]`` over the taps,
    then each group adds up its output channels."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], Cg = w.shape[2], O = w.shape[3]
    cdef Py_ssize_t Og = O // groups
    cdef Py_ssize_t t, n, r, q, a, m, ci, g, k, oh, i, cs, ts
    cdef floating s
    cdef floating* ap
    cdef floating* gp
    with nogil:
        # gather: each (n, r) owns the input row gx[n, r]
        for t in prange(gx.shape[0] * H, schedule="static", num_threads=acc.shape[0]):
            n = t // H
            r = t - n * H
            ap = &acc[threadid(), 0, 0]
            for q in range(W):
                memset(ap, 0, Cg * O * sizeof(floating))
                m = cn[q]
                if m:
                    cs = _step(ct, q, m, 0) * O
                    ts = _step(ct, q, m, 1) * Cg * O
                    for a in range(rn[r]):
                        oh = rt[r, a, 0]
                        i = rt[r, a, 1]
                        for ci in range(Cg):
                            _dot(O, m, &gy[n, oh, ct[q, 0, 0], 0], cs, &w[i, ct[q, 0, 1], ci, 0],
                                 ts, ap + ci * O)
                gp = &gx[n, r, q, 0]
                for g in range(groups):
                    for ci in range(Cg):
                        s = 0
                        for k in range(g * Og, (g + 1) * Og):
                            s = s + ap[ci * O + k]
                        gp[g * Cg + ci] = s


def _backward_input_bcast(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] wt,
                          floating[:, :, :, ::1] gx, rows, cols, Py_ssize_t groups):
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t H = gx.shape[1], W = gx.shape[2], C = gx.shape[3], Cg = wt.shape[3]
    cdef Py_ssize_t Og = wt.shape[2] // groups
    cdef Py_ssize_t t, n, r, q, a, b, g, oh, i
    cdef floating* gp
    with nogil:
        # gather: each (n, r) owns the input row gx[n, r]
        for t in prange(gx.shape[0] * H, schedule="static"):
            n = t // H
            r = t - n * H
            for q in range(W):
                gp = &gx[n, r, q, 0]
                memset(gp, 0, C * sizeof(floating))
                for a in range(rn[r]):
                    oh = rt[r, a, 0]
                    i = rt[r, a, 1]
                    for b in range(cn[q]):
                        for g in range(groups):
                            _bcast(Cg, Og, &gy[n, oh, ct[q, b, 0], g * Og], 1,
                                   &wt[i, ct[q, b, 1], g * Og, 0], Cg, gp + g * Cg)


def _backward_weight(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                     floating[:, :, :, :, ::1] parts, rows, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t dil_w,
                     Py_ssize_t groups, floating[:, :, ::1] xe, Py_ssize_t[:, ::1] tags,
                     bint expanded, Py_ssize_t band, floating[:, ::1] bparts, bint bias,
                     floating[:, ::1] packed, Py_ssize_t ld, bint rotated, bint wide):
    """``parts[thread]`` += the weight gradient of the bands of ``band`` output rows that thread
    ran (:func:`_weight_band`; ``rotated``: ``cd_wrot4``'s, row by row), and ``bparts[thread]``
    += their pixels of gy when ``bias``."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef Py_ssize_t OH = gy.shape[1], nb = (OH + band - 1) // band, u, r0, r, pr, pn
    cdef const char* pf = NULL
    reach, off, lo_all, hi_all = _reach(x.shape[2], x.shape[3], parts.shape[1], parts.shape[2],
                                        parts.shape[3], gy.shape[2], sw, pl, dil_h, dil_w)
    cdef const Py_ssize_t[:, ::1] reach_v = reach
    cdef const Py_ssize_t[::1] off_v = off
    cdef Py_ssize_t lo = lo_all, hi = hi_all
    with nogil:
        for u in prange(gy.shape[0] * nb, schedule="static", num_threads=parts.shape[0]):
            r0 = (u % nb) * band
            if rotated:
                for r in range(r0, min(OH, r0 + band)):
                    _wrot4(gy.shape[3], rn[r], &rt[r, 0, 0], &x[u // nb, 0, 0, 0],
                           x.shape[2] * x.shape[3], &gy[u // nb, r, 0, 0], &reach_v[0, 0],
                           parts.shape[2], sw, pl, dil_w, &parts[threadid(), 0, 0, 0, 0])
                if bias:
                    _rowsum((min(OH, r0 + band) - r0) * gy.shape[2], gy.shape[3],
                            &gy[u // nb, r0, 0, 0], &bparts[threadid(), 0])
                continue
            # the next band's gy, prefetched by the GEMM
            pn = 0
            if u + 1 < gy.shape[0] * nb:
                pr = ((u + 1) % nb) * band
                pf = <const char*>&gy[(u + 1) // nb, pr, 0, 0]
                pn = min(band, OH - pr) * gy.shape[2] * gy.shape[3] * sizeof(floating)
            _weight_band(gy, x, parts, rt, rn, reach_v, off_v, lo, hi, u // nb, r0,
                         min(OH, r0 + band), threadid(), sh, sw, pt, pl, dil_w, groups, xe,
                         tags, expanded, bparts, bias, _aligned(&packed[threadid(), 0]), ld, pf,
                         pn, wide)


@functools.lru_cache(maxsize=64)
def _reach(W, C, KH, KW, Cg, OW, sw, pl, dil_h, dil_w):
    """The weight gradient's column plan: ``reach[j] = [lo, hi)``, the output columns whose tap
    j reads a real input column; ``[lo_all, hi_all)``, those of every tap; ``off``, the GEMM's
    taps (i, j, c) as offsets in x from the band's first tap (their order: rows of gw).
    Cached per geometry (read-only arrays)."""
    reach = np.zeros((KW, 2), np.intp)
    lo_all = 0
    for j in range(KW):
        lo = _ceil_div(pl - j * dil_w, sw)
        reach[j] = lo, max(lo, min(OW, _ceil_div(W + pl - j * dil_w, sw)))
        lo_all = max(lo_all, lo)
    off = np.array([(i * dil_h * W + j * dil_w) * C + ci for i in range(KH) for j in range(KW)
                    for ci in range(Cg)] or [0], np.intp)
    reach.flags.writeable = off.flags.writeable = False
    return reach, off, lo_all, int(reach[:, 1].min())


cdef inline floating* _aligned(floating* p) noexcept nogil:
    """``p`` rounded up to a cache line (the buffers hold a spare one)."""
    return <floating*>((<uintptr_t>p + 63) & ~(<uintptr_t>63))


cdef Py_ssize_t _weight_band(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                             floating[:, :, :, :, ::1] parts, const Py_ssize_t[:, :, ::1] rt,
                             const Py_ssize_t[::1] rn, const Py_ssize_t[:, ::1] reach,
                             const Py_ssize_t[::1] off, Py_ssize_t lo_all, Py_ssize_t hi_all,
                             Py_ssize_t n, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t tid,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                             Py_ssize_t dil_w, Py_ssize_t groups, floating[:, :, ::1] xe,
                             Py_ssize_t[:, ::1] tags, bint expanded, floating[:, ::1] bparts,
                             bint bias, floating* pk, Py_ssize_t ld, const char* pf,
                             Py_ssize_t pn, bint wide) noexcept nogil:
    """``parts[tid]`` += the weight gradient of the output rows ``[r0, r1)`` of image n, and
    ``bparts[tid]`` += their pixels of gy when ``bias``.
    Not expanded, the rows and columns whose taps are all real run one GEMM per group
    (``cd_gemm``: every tap x the group's channels, summed over the band's pixels; from a copy
    of the band's gy in ``pk``, rows of ``ld``, unless gy is aligned; prefetching ``pn`` bytes
    at ``pf``); the others, and the expanded rows, run register tiles of taps x output channels
    summed over a row. Returns the first row s0 of the band's copy when it holds whole rows
    ``gy[n, s0:s1]`` (s1: the end of the run of rows whose row taps are all real), else -1."""
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3], KH = parts.shape[1]
    cdef Py_ssize_t KW = parts.shape[2], Cg = parts.shape[3], O = parts.shape[4]
    cdef Py_ssize_t OW = gy.shape[2], Og = O // groups
    cdef Py_ssize_t r, s0, s1, a, i, ih, j, ci, g, lo, hi, part, ret = -1
    cdef bint merged = not expanded and groups == 1 and dil_w == 1, full, summed = False, copied
    cdef bint gemm = not expanded and lo_all < hi_all, edges = False
    cdef floating* e = NULL
    cdef floating* ec
    # the GEMM's rows leave nothing to do unless a tap reaches columns outside [lo_all, hi_all)
    for j in range(KW):
        edges = edges or reach[j, 0] < lo_all or reach[j, 1] > hi_all
    # the band's rows whose row taps are all real: [s0, s1)
    s0 = r0
    while s0 < r1 and rn[s0] < KH:
        s0 = s0 + 1
    s1 = s0
    while s1 < r1 and rn[s1] == KH:
        s1 = s1 + 1
    if gemm and s0 < s1:
        # gy's vectors straddle cache lines unless aligned: then a copy, which also sums the
        # bias gradient when it is the whole band
        copied = (<uintptr_t>&gy[n, s0, lo_all, 0] | O * sizeof(floating)
                  | Og * sizeof(floating)) % _vector_bytes(wide) != 0
        summed = copied and bias and s0 == r0 and s1 == r1 and lo_all == 0 and hi_all == OW
        if copied and groups == 1 and lo_all == 0 and hi_all == OW:
            ret = s0
        for g in range(groups):
            if copied:
                _pack(s1 - s0, hi_all - lo_all, Og, &gy[n, s0, lo_all, g * Og], OW * O, O, pk,
                      ld, &bparts[tid, g * Og] if summed else NULL)
            _gemm(wide, Og, KH * KW * Cg, s1 - s0, hi_all - lo_all,
                  &x[n, s0 * sh - pt, lo_all * sw - pl, g * Cg], sh * W * C, sw * C, &off[0],
                  <const floating*>pk if copied else &gy[n, s0, lo_all, g * Og],
                  (hi_all - lo_all) * ld if copied else OW * O, ld if copied else O,
                  &parts[tid, 0, 0, 0, g * Og], O, pf, 0 if g else pn)
    for r in range(r0, r1):
        full = gemm and s0 <= r < s1
        if full and not edges:
            continue
        for a in range(rn[r]):
            ih = rt[r, a, 0]
            i = rt[r, a, 1]
            if expanded:
                # the row expanded over all O: e[ci, iw, o] = x[ih, iw, (o // Og)*Cg + ci]
                e = _expanded_row(&x[n, ih, 0, 0], n * H + ih, &tags[tid, 0], tags.shape[1],
                                  &xe[tid, 0, 0], W, C, Cg, Og, groups)
            for ci in range(Cg if expanded else 1):
                if expanded:
                    ec = e + ci * W * O
                    if lo_all < hi_all:
                        _vtile(O, KW, 1, hi_all - lo_all, ec + (lo_all * sw - pl) * O,
                               dil_w * O, 0, sw * O, &gy[n, r, lo_all, 0], 0, O,
                               &parts[tid, i, 0, ci, 0], Cg * O, True)
                elif merged and lo_all < hi_all and not full:
                    # the taps (j, c) are consecutive in x and in gw
                    _tile(O, KW * C, 1, hi_all - lo_all, &x[n, ih, lo_all * sw - pl, 0], 1, 0,
                          sw * C, &gy[n, r, lo_all, 0], 0, O, &parts[tid, i, 0, 0, 0], O, True)
                for j in range(KW):
                    for part in range(3):
                        # the columns of tap j before, inside and after [lo_all, hi_all)
                        lo = reach[j, 0]
                        hi = reach[j, 1]
                        if lo_all < hi_all:
                            if part == 0:
                                hi = min(hi, lo_all)
                            elif part == 2:
                                lo = max(lo, hi_all)
                            elif expanded or merged or full:
                                hi = 0
                            else:
                                lo = lo_all
                                hi = hi_all
                        elif part:
                            hi = 0
                        if lo >= hi:
                            continue
                        if expanded:
                            _vtile(O, 1, 1, hi - lo, ec + (lo * sw - pl + j * dil_w) * O, 0, 0,
                                   sw * O, &gy[n, r, lo, 0], 0, O, &parts[tid, i, j, ci, 0], 0,
                                   True)
                            continue
                        for g in range(groups):
                            _tile(Og, Cg, 1, hi - lo, &x[n, ih, lo * sw - pl + j * dil_w, g * Cg],
                                  1, 0, sw * C, &gy[n, r, lo, g * Og], 0, O,
                                  &parts[tid, i, j, 0, g * Og], O, True)
    if bias and not summed:  # the band's gy, in cache
        _rowsum((r1 - r0) * OW, O, &gy[n, r0, 0, 0], &bparts[tid, 0])
    return ret


def _backward_fused(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                    const floating[:, :, :, ::1] w, floating[:, :, :, ::1] gx,
                    floating[:, :, :, :, ::1] parts, rows, rows_x, Py_ssize_t sh, Py_ssize_t pt,
                    Py_ssize_t pl, Py_ssize_t dil_h, Py_ssize_t band,
                    const Py_ssize_t[::1] order, const Py_ssize_t[::1] bstart,
                    const Py_ssize_t[:, ::1] chunks, floating[:, ::1] bparts, bint bias,
                    floating[:, ::1] packed, Py_ssize_t ld, floating[:, :, :, ::1] gt,
                    Py_ssize_t sft, floating[:, ::1] res, Py_ssize_t[:, :, ::1] tab,
                    floating[:, :, ::1] xe, Py_ssize_t[:, ::1] tags, bint wide):
    """Both gradients from one read of gy (the lanes path of ``backward_input``, one group).
    Task ``(n, c)`` runs the bands ``[chunks[c, 0], chunks[c, 1])`` of image n: per band
    :func:`_weight_band`, then the band's rows of gy transposed into the thread's ring
    (:func:`_ring`, row oh in slot ``oh % slots``) from its aligned copy (in cache) where it has
    one, then (``cd_xrow``) the input rows ``order[bstart[b]:bstart[b + 1]]``, those whose
    highest row of gy is in band b (rows reading none: band 0); first the rows
    ``[chunks[c, 2], band start)`` its input rows read from earlier bands."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] rtx = rows_x[0]
    cdef const Py_ssize_t[::1] rnx = rows_x[1]
    cdef Py_ssize_t N = gy.shape[0], OH = gy.shape[1], OW = gy.shape[2], O = gy.shape[3]
    cdef Py_ssize_t W = gx.shape[2], C = gx.shape[3], KH = w.shape[0], KW = w.shape[1]
    cdef Py_ssize_t ldt = gt.shape[3], slots = gt.shape[1], nch = chunks.shape[0]
    cdef Py_ssize_t nb = (OH + band - 1) // band, t, n, c, b, u, r0, r1, oh, s0, a, i, ih
    cdef Py_ssize_t tid, pr, pn
    cdef const char* pf = NULL
    cdef floating* pk
    reach, off, lo_all, hi_all = _reach(W, C, KH, KW, C, OW, 1, pl, dil_h, 1)
    cdef const Py_ssize_t[:, ::1] reach_v = reach
    cdef const Py_ssize_t[::1] off_v = off
    cdef Py_ssize_t lo = lo_all, hi = hi_all
    with nogil:
        for t in prange(N * nch, schedule="static", num_threads=parts.shape[0]):
            n = t // nch
            c = t - n * nch
            tid = threadid()
            pk = _aligned(&packed[tid, 0])
            for oh in range(chunks[c, 2], chunks[c, 0] * band):
                _trow(OW, O, &gy[n, oh, 0, 0], O, &gt[tid, oh % slots, 0, 0], ldt,
                      sft + KW - 1 - pl)
            for b in range(chunks[c, 0], chunks[c, 1]):
                u = n * nb + b
                r0 = b * band
                r1 = min(OH, r0 + band)
                pn = 0
                if u + 1 < N * nb:
                    pr = ((u + 1) % nb) * band
                    pf = <const char*>&gy[(u + 1) // nb, pr, 0, 0]
                    pn = min(band, OH - pr) * OW * O * sizeof(floating)
                s0 = _weight_band(gy, x, parts, rt, rn, reach_v, off_v, lo, hi, n, r0, r1, tid,
                                  sh, 1, pt, pl, 1, 1, xe, tags, False, bparts, bias,
                                  pk, ld, pf, pn, wide)
                for oh in range(r0, r1):
                    if s0 >= 0 and rn[oh] == KH:
                        _trow(OW, O, pk + (oh - s0) * OW * ld, ld, &gt[tid, oh % slots, 0, 0],
                              ldt, sft + KW - 1 - pl)
                    else:
                        _trow(OW, O, &gy[n, oh, 0, 0], O, &gt[tid, oh % slots, 0, 0], ldt,
                              sft + KW - 1 - pl)
                for a in range(bstart[b], bstart[b + 1]):
                    ih = order[a]
                    if rnx[ih] == 0:
                        memset(&gx[n, ih, 0, 0], 0, W * C * sizeof(floating))
                        continue
                    for i in range(rnx[ih]):
                        tab[tid, 0, i] = rtx[ih, i, 0] % slots
                        tab[tid, 1, i] = rtx[ih, i, 1]
                    _xrow(rnx[ih], &gt[tid, 0, 0, sft], O * ldt, &tab[tid, 0, 0], &w[0, 0, 0, 0],
                          KW * C * O, &tab[tid, 1, 0], KW, C, O, ldt, W, &res[tid, 0],
                          &gx[n, ih, 0, 0], NULL, 0)
