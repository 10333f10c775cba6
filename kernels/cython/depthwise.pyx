"""Depthwise 2-D convolution (groups == C, depth multiplier M), NHWC (``kernels/README.md``).

Weights are ``w[KH, KW, 1, C*M]``: output channel ``c*M + m`` reads input channel ``c``. Each
public function checks its arguments in plain Python, takes the filter taps that reach a real
cell along each axis from ``_taps`` (padded cells read as zeros and are skipped), then runs a
fused (float32/float64) kernel without the GIL, in parallel over rows of the output.

The forward pass and the input gradient are the same gather: every cell of ``out`` sums
``src * w`` over its taps (``src`` = x or gy). With ``M == 1`` a task is one output row, cut
into runs of columns that share their taps (``_taps.runs``) and each run into strips of 8, 4
and 1 pixels. A strip walks every channel, 8 float32 (4 float64) at a time, then one at a time:
its pixels sum their (up to 3x3) taps in registers, from the bias, and store once; where the
run's pixel step equals its tap step (stride == dilation), each source cell of the strip is
loaded once for all the pixels that read it. A row of a "same" 3-wide filter, stride ==
dilation == 1 along it (most 3x3 layers), instead walks all its pixels, edges included, one
channel vector at a time (``FC_ROLL_BODY``): a source cell is loaded once per row tap and feeds
three pixels, the weights stay in registers (1.15-1.25x the strips on Xception's 19x19x728).
Every pointer walks a contiguous row, which the hardware prefetchers follow; the next task's
new source row is prefetched into L2 (the forward: a strip or channel vector at a time, the
cells below those it reads; the input gradient: at the task's start). The weight gradient
walks a whole run per channel vector, its (up to 3x3) tap sums in registers from the thread's
``gw`` and back, the pixels in order; where two output rows' taps differ by one source row
(stride == dilation, at most 3 row taps), they run as a pair, each source cell loaded once for
both. An output of at least ``_NT`` bytes (more than stays in cache; below
``kernels/_stream.py``'s bound) is computed row by row in a per-thread buffer, then streamed to
memory by non-temporal stores: no read of the output's lines before they are written.
:func:`backward` runs the input gradient as the forward pass runs (its runs list the taps in
increasing cell, so the strips slide there too), then the weight gradient, a task per row of gy
(rows ``r``, ``r + 1`` as a pair, ``r`` even). With
GCC on x86-64 these kernels are compiled twice, for AVX2+FMA (chosen at run time when the CPU
has them) and for the build's baseline (SSE2 unless ``FASTCONV_NATIVE=1``). ``M > 1`` runs
plain loops.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset

from fastconv.kernels.cython.threads import get_max_threads
from fastconv.kernels import _checks
from fastconv.kernels._stream import streamed
from fastconv.kernels._taps import taps as _taps, runs as _runs

# fc_dw keeps three pointers per real row tap of its row in arrays on the stack (VLAs): rows with
# more row taps than this (filters taller than any real layer's) run the plain M > 1 loops, so a
# tall filter cannot overflow a thread's stack
_MAX_ROW_TAPS = 64
_NT = 1 << 22  # outputs of this many bytes or more: streamed (non-temporal) stores

cdef extern from *:
    """
    #include "fc_isa.h"
    #define FC_INLINE static inline __attribute__((always_inline))
    #define FC_UNROLL _Pragma("GCC unroll 16")
    /* 32-byte vectors with element alignment: unaligned loads and stores */
    typedef float fc_vf __attribute__((vector_size(32), aligned(4), may_alias));
    typedef double fc_vd __attribute__((vector_size(32), aligned(8), may_alias));
    #define FC_MIN(a, b) ((a) < (b) ? (a) : (b))
    /* the weight gradient prefetches its source cells this many elements (2 lines of floats)
       ahead: its strided walk is one the hardware prefetchers miss */
    #define FC_PF 32
    #include "fc_stream.h"

    /* A run (kernels/_taps.py): pixels q = q0 + i*qs (i < nq) of the output row out, pixel i
       reading the cells cell0 + i*cs + t*ts of the source rows, t < ntaps, taps tap0 + t*js
       (steps in elements). */
    #define FC_RUN(r) Py_ssize_t q0 = r[0], qs = r[1] * C, nq = r[2], cell0 = r[3],          \\
        cs = r[4] * C, tap0 = r[5], js = r[6] * C, ts = r[7] * C

    /* A strip of P pixels of a run, every channel: L at a time (a vector V, then scalars T),
       the channels innermost, so every pointer walks a contiguous row. The source cell of
       pixel p, tap t is s[a] + p*cs + t*ts; slide (cs == ts): the RA x (P + CA - 1) cells of
       the strip are each loaded once. The sums run in tap order (a, then t) per pixel, over
       the pixels in order per tap, whatever the path. Sliding, the same cells pfd elements
       past the last source row are prefetched into L2 (pfd 0: none). */
    #define FC_GATHER_BODY(T, V, L)                                                           \\
    for (; c + L <= C; c += L) {                                                              \\
        V acc[P], b0 = {0};                                                                   \\
        if (bias) b0 = *(const V*)(bias + c);                                                 \\
        FC_UNROLL for (int p = 0; p < P; p++) acc[p] = first ? b0 : *(V*)(o + p * qs + c);   \\
        FC_UNROLL for (int a = 0; a < RA; a++) {                                              \\
            V wv[3];                                                                          \\
            const T* x = s[a] + off + c;                                                      \\
            FC_UNROLL for (int t = 0; t < CA; t++) wv[t] = *(const V*)(w[a] + t * js + c);   \\
            if (slide) {                                                                      \\
                FC_UNROLL for (int k = 0; k < P + CA - 1; k++) {                              \\
                    const V xv = *(const V*)(x + k * ts);                                     \\
                    if (pfd && a == RA - 1) __builtin_prefetch(x + k * ts + pfd, 0, 2);       \\
                    FC_UNROLL for (int t = 0; t < CA; t++)                                    \\
                        if (k - t >= 0 && k - t < P) acc[k - t] += xv * wv[t];                \\
                }                                                                             \\
            } else {                                                                          \\
                FC_UNROLL for (int p = 0; p < P; p++)                                         \\
                    FC_UNROLL for (int t = 0; t < CA; t++)                                    \\
                        acc[p] += *(const V*)(x + p * cs + t * ts) * wv[t];                   \\
            }                                                                                 \\
        }                                                                                     \\
        FC_UNROLL for (int p = 0; p < P; p++) *(V*)(o + p * qs + c) = acc[p];                 \\
    }
    /* the weight gradient of the whole run, one channel vector at a time: its RA x CA tap
       sums g[a][t*js] (and gb's, unless gb is NULL) stay in registers while the pixels go by in
       order; the source cells of the run's pixels (a few lines a pixel) stay in L1 for the
       next vector. pair: also the next output row gy2, whose row tap a reads s[a + 1] (each
       source cell loaded once for both rows) */
    #define FC_WEIGHT_BODY(T, V, L)                                                           \\
    for (; c + L <= C; c += L) {                                                              \\
        V acc[3][3], sum = {0};                                                               \\
        FC_UNROLL for (int a = 0; a < RA; a++)                                                \\
            FC_UNROLL for (int t = 0; t < CA; t++) acc[a][t] = *(V*)(g[a] + t * js + c);     \\
        if (gb) sum = *(V*)(gb + c);                                                          \\
        for (Py_ssize_t i = 0; i < nq; i++) {                                                 \\
            const V dv = *(const V*)(gy + i * qs + c);                                        \\
            const V dv2 = pair ? *(const V*)(gy2 + i * qs + c) : dv;                          \\
            __builtin_prefetch(gy + i * qs + c + FC_PF);                                      \\
            if (pair) __builtin_prefetch(gy2 + i * qs + c + FC_PF);                           \\
            FC_UNROLL for (int a = 0; a < RA + pair; a++)                                     \\
                __builtin_prefetch(s[a] + i * cs + (CA - 1) * ts + c + FC_PF);                \\
            sum += dv;                                                                        \\
            if (pair) sum += dv2;                                                             \\
            FC_UNROLL for (int a = 0; a < RA + pair; a++)                                     \\
                FC_UNROLL for (int t = 0; t < CA; t++) {                                      \\
                    const V xv = *(const V*)(s[a] + i * cs + t * ts + c);                     \\
                    if (a < RA) acc[a][t] += xv * dv;                                         \\
                    if (pair && a > 0) acc[a - 1][t] += xv * dv2;                             \\
                }                                                                             \\
        }                                                                                     \\
        FC_UNROLL for (int a = 0; a < RA; a++)                                                \\
            FC_UNROLL for (int t = 0; t < CA; t++) *(V*)(g[a] + t * js + c) = acc[a][t];     \\
        if (gb) *(V*)(gb + c) = sum;                                                          \\
    }

    /* The whole row of a "same" 3-wide filter (stride == dilation == 1 along it, fc_roll3):
       pixel q reads the cells q - 1 + d, d < 3, those inside the row, with the weight columns
       w + d*js. One channel vector at a time the pixels go by in order, its RA x 3 weight
       vectors in registers: each source cell is loaded once (RA loads, 3*RA FMAs into the sums
       of pixels k + 1, k, k - 1) and pixel k - 1 is stored. Every load walks its row with a
       constant stride; the next line of each cell is prefetched (and the cells pfd elements
       past the last source row into L2, pfd 0: none), and the lines stay in L1 for the next
       vector. A pixel sums from the bias over d, then the row taps. */
    #define FC_ROLL_LOAD(T, V, L) {                                                           \\
        FC_UNROLL for (int a = 0; a < RA; a++) {                                              \\
            x[a] = *(const V*)p[a];                                                           \\
            if (L > 1) __builtin_prefetch(p[a] + 64 / sizeof(T));  /* the next line */       \\
        }                                                                                     \\
        if (L > 1 && pfd) __builtin_prefetch(p[RA - 1] + pfd, 0, 2);                          \\
        FC_UNROLL for (int a = 0; a < RA; a++) p[a] += C;                                     \\
    }
    #define FC_ROLL_ADD(A, d) FC_UNROLL for (int a = 0; a < RA; a++) A += x[a] * wv[a][d];
    #define FC_ROLL_BODY(T, V, L)                                                             \\
    for (; c + L <= C; c += L) {                                                              \\
        V wv[3][3], x[3];                                                                     \\
        const V zero = {0};                                                                   \\
        const V* b = bias ? (const V*)(bias + c) : &zero;  /* read again at each pixel */     \\
        const T* p[3];  /* the cells of the next pixel */                                     \\
        T* q = o + c;                                                                         \\
        FC_UNROLL for (int a = 0; a < RA; a++) {                                              \\
            p[a] = s[a] + c;                                                                  \\
            FC_UNROLL for (int d = 0; d < 3; d++) wv[a][d] = *(const V*)(w[a] + d * js + c); \\
        }                                                                                     \\
        V A0 = *b, A1 = *b;  /* the sums of pixels k - 1 and k */                            \\
        FC_ROLL_LOAD(T, V, L)                                                                 \\
        FC_ROLL_ADD(A1, 0) FC_ROLL_ADD(A0, 1)                                                 \\
        for (Py_ssize_t k = 1; k < nq - 1; k++) {                                             \\
            V A2 = *b;                                                                        \\
            FC_ROLL_LOAD(T, V, L)                                                             \\
            FC_ROLL_ADD(A2, 0) FC_ROLL_ADD(A1, 1) FC_ROLL_ADD(A0, 2)                          \\
            *(V*)q = A0;                                                                      \\
            q += C;                                                                           \\
            A0 = A1;                                                                          \\
            A1 = A2;                                                                          \\
        }                                                                                     \\
        FC_ROLL_LOAD(T, V, L)                                                                 \\
        FC_ROLL_ADD(A1, 1) FC_ROLL_ADD(A0, 2)                                                 \\
        *(V*)q = A0;                                                                          \\
        *(V*)(q + C) = A1;                                                                    \\
    }

    /* One run, the RA x CA taps from (0, t0) of the row pointers src, w (g): out (+)= the
       gather (first: start from the bias, or 0), or, gy given, g += the weight gradient (and,
       first, gb += the run's pixels of gy unless gb is NULL). */
    #define FC_PASS(T, V)                                                                     \\
    FC_INLINE void fc_gather_##T(Py_ssize_t C, const int P, const int RA, const int CA,       \\
                                 const int slide, int first, const T* const* s,               \\
                                 Py_ssize_t pfd, Py_ssize_t off, Py_ssize_t cs, Py_ssize_t ts,\\
                                 const T* const* w, Py_ssize_t js, const T* bias, T* o,       \\
                                 Py_ssize_t qs) {                                             \\
        Py_ssize_t c = 0;                                                                     \\
        FC_GATHER_BODY(T, V, (Py_ssize_t)(sizeof(V) / sizeof(T)))                             \\
        FC_GATHER_BODY(T, T, 1)                                                               \\
    }                                                                                         \\
    FC_INLINE void fc_weight_##T(Py_ssize_t C, const int RA, const int CA, const int pair,   \\
                                 const T* const* s, Py_ssize_t nq, Py_ssize_t cs,             \\
                                 Py_ssize_t ts, const T* gy, const T* gy2, Py_ssize_t qs,     \\
                                 T* const* g, Py_ssize_t js, T* gb) {                         \\
        Py_ssize_t c = 0;                                                                     \\
        FC_WEIGHT_BODY(T, V, (Py_ssize_t)(sizeof(V) / sizeof(T)))                             \\
        FC_WEIGHT_BODY(T, T, 1)                                                               \\
    }                                                                                         \\
    /* the row o of nq >= 3 pixels (FC_ROLL_BODY) */                                          \\
    FC_INLINE void fc_roll1_##T(Py_ssize_t C, const int RA, const T* const* s, Py_ssize_t pfd, \\
                               const T* const* w, Py_ssize_t js, const T* bias, T* o,          \\
                               Py_ssize_t nq) {                                               \\
        Py_ssize_t c = 0;                                                                     \\
        FC_ROLL_BODY(T, V, (Py_ssize_t)(sizeof(V) / sizeof(T)))                               \\
        FC_ROLL_BODY(T, T, 1)                                                                 \\
    }                                                                                         \\
    FC_INLINE void fc_pass_##T(Py_ssize_t C, const Py_ssize_t* r, Py_ssize_t t0, const int RA,\\
                               const int CA, int first, Py_ssize_t pfd, const T* const* src, \\
                               const T* const* w, const T* bias, T* out, const T* gy,        \\
                               T* const* g, T* gb, const T* gy2) {                            \\
        FC_RUN(r);                                                                            \\
        const T* s[4];                                                                        \\
        const T* wr[3];                                                                       \\
        T* gr[3];                                                                             \\
        FC_UNROLL for (int a = 0; a < RA + (gy2 != 0); a++)                                   \\
            s[a] = src[a] + cell0 * C + t0 * ts;                                              \\
        FC_UNROLL for (int a = 0; a < RA; a++) {                                              \\
            if (gy) gr[a] = g[a] + tap0 * C + t0 * js;                                        \\
            else wr[a] = w[a] + tap0 * C + t0 * js;                                           \\
        }                                                                                     \\
        Py_ssize_t i = 0;                                                                     \\
        if (gy)                                                                               \\
            if (gy2)                                                                          \\
                fc_weight_##T(C, RA, CA, 1, s, nq, cs, ts, gy + q0 * C, gy2 + q0 * C, qs, gr, \\
                              js, first ? gb : 0);                                            \\
            else                                                                              \\
                fc_weight_##T(C, RA, CA, 0, s, nq, cs, ts, gy + q0 * C, 0, qs, gr, js,        \\
                              first ? gb : 0);                                                \\
        else                                                                                  \\
            FC_STRIPS(T, FC_GATHER)                                                           \\
    }
    /* P pixels from pixel i of the run */
    #define FC_GATHER(T, P, SLIDE) fc_gather_##T(C, P, RA, CA, SLIDE, first, s, pfd, i * cs, cs, \\
                                                 ts, wr, js, bias, out + q0 * C + i * qs, qs)
    /* the run's pixels from i in strips of 8 and 4 (sliding when cs == ts), then 1 */
    #define FC_STRIPS(T, F) {                                                                 \\
        if (cs == ts)                                                                         \\
            for (; i + 8 <= nq; i += 8) F(T, 8, 1);                                           \\
        for (; i + 4 <= nq; i += 4)                                                           \\
            if (cs == ts)                                                                     \\
                F(T, 4, 1);                                                                   \\
            else                                                                              \\
                F(T, 4, 0);                                                                   \\
        for (; i < nq; i++) F(T, 1, 0);                                                       \\
    }

    /* One task, M == 1: the output row out (gy == NULL: forward pass or input gradient, out
       overwritten) or the weight and bias gradients of the output row gy (g, gb: the thread's
       gw and gb or NULL, added to), and with gy2 those of the output row gy2 too, whose row
       tap a reads row tap a + 1's source row, the last one the source row xr. pfd: the
       gather's prefetch distance (FC_GATHER_BODY). Row tap a < nr reads the source row
       src + rt[2a] * src_row and the weight row w (g) + rt[2a + 1] * w_row; the taps in tiles
       of at most 3 x 3. */
    #define FC_DW(T, V)                                                                       \\
    FC_PASS(T, V)                                                                             \\
    /* fc_roll1 on its own: the registers for its loops alone */                              \\
    FC_CLONES __attribute__((noinline)) static void fc_roll_##T(                              \\
            Py_ssize_t C, Py_ssize_t nr, const T* const* s, Py_ssize_t pfd, const T* const* w,\\
            Py_ssize_t js, const T* bias, T* o, Py_ssize_t nq) {                              \\
        if (nr == 3) fc_roll1_##T(C, 3, s, pfd, w, js, bias, o, nq);                          \\
        else if (nr == 2) fc_roll1_##T(C, 2, s, pfd, w, js, bias, o, nq);                     \\
        else fc_roll1_##T(C, 1, s, pfd, w, js, bias, o, nq);                                  \\
    }                                                                                         \\
    FC_CLONES static void fc_dw_##T(Py_ssize_t C, Py_ssize_t nr, const Py_ssize_t* rt,       \\
                                    const T* src, Py_ssize_t src_row, const T* w, T* g,      \\
                                    Py_ssize_t w_row, const Py_ssize_t* runs,                \\
                                    Py_ssize_t nruns, const T* bias, T* out, const T* gy,    \\
                                    T* gb, const T* gy2, Py_ssize_t xr, Py_ssize_t pfd) {     \\
        const T* sp[nr + 1];                                                                  \\
        const T* wp[nr > 0 ? nr : 1];                                                         \\
        T* gp[nr > 0 ? nr : 1];                                                               \\
        for (Py_ssize_t a = 0; a < nr; a++) {                                                 \\
            sp[a] = src + rt[2 * a] * src_row;                                                \\
            wp[a] = w ? w + rt[2 * a + 1] * w_row : 0;                                        \\
            gp[a] = g ? g + rt[2 * a + 1] * w_row : 0;                                        \\
        }                                                                                     \\
        if (gy2) sp[nr] = src + xr * src_row;                                                 \\
        if (!gy && nr >= 1 && nr <= 3 && fc_roll3(runs, nruns)) {                             \\
            const T* wr[3];                                                                   \\
            for (Py_ssize_t a = 0; a < nr; a++) wr[a] = wp[a] + runs[9 + 5] * C;             \\
            const Py_ssize_t js = runs[9 + 6] * C, nq = runs[9 + 2] + 2;                      \\
            fc_roll_##T(C, nr, sp, pfd, wr, js, bias, out, nq);                               \\
            return;                                                                           \\
        }                                                                                     \\
        for (const Py_ssize_t* r = runs; r < runs + 9 * nruns; r += 9) {                      \\
            if (nr == 0 || r[8] == 0) {  /* no real tap: out = the bias (or 0); gb still sums */\\
                for (Py_ssize_t i = 0; i < r[2]; i++)                                         \\
                    for (Py_ssize_t c = 0; c < C; c++)                                        \\
                        if (!gy)                                                              \\
                            out[(r[0] + i * r[1]) * C + c] = bias ? bias[c] : 0;              \\
                        else if (gb) {                                                        \\
                            gb[c] += gy[(r[0] + i * r[1]) * C + c];                           \\
                            if (gy2) gb[c] += gy2[(r[0] + i * r[1]) * C + c];                 \\
                        }                                                                     \\
                continue;                                                                     \\
            }                                                                                 \\
            for (Py_ssize_t a0 = 0; a0 < nr; a0 += 3)                                         \\
                for (Py_ssize_t t0 = 0; t0 < r[8]; t0 += 3) {                                 \\
                    const int first = a0 == 0 && t0 == 0;                                     \\
                    switch (FC_MIN(3, nr - a0) * 4 + FC_MIN(3, r[8] - t0)) {                  \\
                    FC_CASES(T)                                                               \\
                    }                                                                         \\
                }                                                                             \\
        }                                                                                     \\
    }
    #define FC_CASE(T, RA, CA) case RA * 4 + CA:                                              \\
        fc_pass_##T(C, r, t0, RA, CA, first, a0 + RA == nr ? pfd : 0, sp + a0, wp + a0, bias, \\
                    out, gy, gp + a0, gb, gy2);                                               \\
        break;
    #define FC_CASES(T) FC_CASE(T, 1, 1) FC_CASE(T, 1, 2) FC_CASE(T, 1, 3)                    \\
        FC_CASE(T, 2, 1) FC_CASE(T, 2, 2) FC_CASE(T, 2, 3)                                    \\
        FC_CASE(T, 3, 1) FC_CASE(T, 3, 2) FC_CASE(T, 3, 3)
    /* the runs of a row are those of a "same" 3-wide filter, stride == dilation == 1 along
       it: an edge pixel's two taps, the middle run's three on the cells q - 1 + d, the other
       edge's two (FC_ROLL_BODY) */
    static int fc_roll3(const Py_ssize_t* r, Py_ssize_t nruns) {
        const Py_ssize_t* m = r + 9;
        const Py_ssize_t* e = r + 18;
        if (nruns != 3 || m[0] != 1 || m[1] != 1 || m[2] < 1 || m[3] != 0 || m[4] != 1
            || m[7] != 1 || m[8] != 3)
            return 0;
        return r[0] == 0 && r[2] == 1 && r[3] == 0 && r[5] == m[5] + m[6] && r[6] == m[6]
            && r[7] == 1 && r[8] == 2 && e[0] == m[2] + 1 && e[2] == 1 && e[3] == m[2]
            && e[5] == m[5] && e[6] == m[6] && e[7] == 1 && e[8] == 2;
    }
    /* the n bytes from p into L2 */
    static void fc_prefetch(const char* p, Py_ssize_t n) {
        for (Py_ssize_t k = 0; k < n; k += 64) __builtin_prefetch(p + k, 0, 2);
    }
    FC_DW(float, fc_vf)
    FC_DW(double, fc_vd)
    """
    void fc_stream(char* dst, const char* src, Py_ssize_t n) noexcept nogil
    void fc_prefetch(const char* p, Py_ssize_t n) noexcept nogil
    void fc_dw_float(Py_ssize_t C, Py_ssize_t nr, const Py_ssize_t* rt, const float* src,
                     Py_ssize_t src_row, const float* w, float* g, Py_ssize_t w_row,
                     const Py_ssize_t* runs, Py_ssize_t nruns, const float* bias, float* out,
                     const float* gy, float* gb, const float* gy2, Py_ssize_t xr,
                     Py_ssize_t pfd) noexcept nogil
    void fc_dw_double(Py_ssize_t C, Py_ssize_t nr, const Py_ssize_t* rt, const double* src,
                      Py_ssize_t src_row, const double* w, double* g, Py_ssize_t w_row,
                      const Py_ssize_t* runs, Py_ssize_t nruns, const double* bias, double* out,
                      const double* gy, double* gb, const double* gy2,
                      Py_ssize_t xr, Py_ssize_t pfd) noexcept nogil


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, b=None):
    """``y[n, oh, ow, c*M + m]`` = sum over taps ``(i, j)`` of
    ``x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, c] * w[i, j, 0, c*M + m]``
    (+ ``b[c*M + m]``).

    x ``(N, H, W, C)``, w ``(KH, KW, 1, C*M)``, y ``(N, OH, OW, C*M)`` (overwritten), b ``(C*M,)``
    or None.
    """
    op = "depthwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    m, (sh, sw, pt, pl, dil_h, dil_w) = _checks.depthwise(op, x, w, y, "x", "y",
                                                          sh, sw, pt, pl, dil_h, dil_w)
    _checks.bias(op, b, y)
    if not y.size:
        return
    rows = _taps(y.shape[1], w.shape[0], sh, pt, dil_h, x.shape[1], False)
    if m == 1 and rows[1].max() <= _MAX_ROW_TAPS:
        _gather_1(x, w, y, rows, _runs(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False), b)
    else:
        _gather_m(x, w, y, rows, _taps(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False),
                  m, False, b)


def backward(gy, x, w, gx, gw, sh, sw, pt, pl, dil_h, dil_w, gb=None):
    """Gradients of :func:`forward`: ``gx`` (N, H, W, C) with respect to x (None: not computed)
    and ``gw`` ``(KH, KW, 1, C*M)`` with respect to w, both overwritten, and the bias's, gy
    summed over its pixels, into ``gb`` ``(C*M,)`` unless None."""
    op = "depthwise.backward"
    bias = _checks.gradients(op, gy, x, w, gx, gw, gb)
    m, (sh, sw, pt, pl, dil_h, dil_w) = _checks.depthwise(op, x, w, gy, "x", "gy",
                                                          sh, sw, pt, pl, dil_h, dil_w)
    # a static split of the rows, one private weight gradient per thread, summed at the end:
    # the same sums in the same order on every call (a dynamic schedule made runs differ)
    parts = np.zeros((max(1, get_max_threads()),) + gw.shape, gw.dtype)
    bparts = np.zeros((parts.shape[0], gy.shape[3] if bias else 0), gw.dtype)
    rows = _taps(gy.shape[1], gw.shape[0], sh, pt, dil_h, x.shape[1], False)
    # gx's tables (with gx None, gy's stand in, unread)
    rows_x = rows if gx is None else _taps(x.shape[1], w.shape[0], sh, pt, dil_h, gy.shape[1],
                                           True)
    if m == 1 and max(rows[1].max(initial=0), rows_x[1].max(initial=0)) <= _MAX_ROW_TAPS:
        if gx is not None and gx.size:
            _gather_1(gy, w, gx, rows_x,
                      _runs(x.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True), None)
        if x.size:
            _backward_weight_1(gy, x, parts, rows,
                               _runs(gy.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False),
                               bparts, bias)
    else:
        if gx is not None and gx.size:
            _gather_m(gy, w, gx, rows_x,
                      _taps(x.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True), m, True,
                      None)
        if gy.size:
            _backward_weight_m(gy, x, parts, rows,
                               _taps(gy.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False), m)
        if bias:
            bparts[0] = gy.sum(axis=(0, 1, 2))
    np.sum(parts, axis=0, out=gw)
    if bias:
        np.sum(bparts, axis=0, out=gb)


# ------------------------------------------------------------------------------------ kernels
def _staging(out, threads, row):
    """``threads`` row buffers when ``out`` has at least ``_NT`` bytes (more than stays in cache;
    below ``_stream.FRESH``: each row is written back from its buffer by non-temporal stores),
    else None."""
    return np.empty((threads, row), out.dtype) if streamed(out.nbytes, _NT) else None


cdef inline void _dw(Py_ssize_t t, const Py_ssize_t[:, :, ::1] rt, const Py_ssize_t[::1] rn,
                     const floating[:, :, :, ::1] src, const floating* w, floating* g,
                     Py_ssize_t w_row, const Py_ssize_t[:, ::1] runs, const floating* bias,
                     floating* out, const floating* gy, floating* gb, Py_ssize_t ow,
                     floating* stage, const floating* gy2=NULL, Py_ssize_t xr=0,
                     bint spread=False) noexcept nogil:
    """Task ``t``: the output row ``(n, r)`` of ``out`` (or of ``gy``, for the weight and bias
    gradients; rows of ``ow`` pixels), prefetching the last source row of the next task (with
    ``gy2``, the row ``gy[n, r + 1]``: the weight gradients of both rows, reading the source row
    ``xr`` too; the next two tasks' last source rows): all at the start, or, ``spread``, a strip
    at a time (the gather); ``stage``: the row is computed there, then streamed to ``out``."""
    cdef Py_ssize_t OH = rt.shape[0], n = t // OH, r = t - n * OH, C = src.shape[3]
    cdef const floating* sp = &src[n, 0, 0, 0] if rn[r] else NULL
    cdef floating* o = (stage if stage else out + t * ow * C) if out else NULL
    cdef const floating* d = gy + t * ow * C if gy else NULL
    cdef Py_ssize_t j, n1, r1, pfd = 0
    for j in range(1 + (gy2 != NULL), 2 + 2 * (gy2 != NULL)):
        n1 = (t + j) // OH
        r1 = t + j - n1 * OH
        if n1 < src.shape[0] and rn[r1]:
            if not spread:
                fc_prefetch(<const char*>&src[n1, rt[r1, rn[r1] - 1, 0], 0, 0],
                            src.shape[2] * C * sizeof(floating))
            elif rn[r]:
                pfd = &src[n1, rt[r1, rn[r1] - 1, 0], 0, 0] - &src[n, rt[r, rn[r] - 1, 0], 0, 0]
    if floating is float:
        fc_dw_float(C, rn[r], &rt[r, 0, 0], sp, src.shape[2] * C, w, g, w_row, &runs[0, 0],
                    runs.shape[0], bias, o, d, gb, gy2, xr, pfd)
    else:
        fc_dw_double(C, rn[r], &rt[r, 0, 0], sp, src.shape[2] * C, w, g, w_row, &runs[0, 0],
                     runs.shape[0], bias, o, d, gb, gy2, xr, pfd)
    if stage:
        fc_stream(<char*>(out + t * ow * C), <const char*>stage, ow * C * sizeof(floating))


def _gather_1(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] w,
              floating[:, :, :, ::1] out, rows, const Py_ssize_t[:, ::1] runs, b):
    """M == 1: ``out[n, r]`` (+ b) for every row ``r`` of every image, the row taps ``rows[r]``,
    the column runs ``runs``."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const floating[::1] bv
    cdef const floating* bp = NULL
    if b is not None:
        bv = b
        bp = &bv[0]
    cdef Py_ssize_t t, tasks = out.shape[0] * out.shape[1], orow = out.shape[2] * out.shape[3]
    cdef int threads = max(1, get_max_threads())
    cdef floating[:, ::1] ws
    cdef floating* st = NULL
    stage = _staging(out.base, threads, orow)
    if stage is not None:
        ws = stage
        st = &ws[0, 0]
    with nogil:
        # each (n, r) owns the row out[n, r]; contiguous blocks of rows share source rows
        for t in prange(tasks, schedule="static", num_threads=threads):
            _dw(t, rt, rn, src, &w[0, 0, 0, 0], NULL, w.shape[1] * w.shape[3], runs, bp,
                &out[0, 0, 0, 0], NULL, NULL, out.shape[2], st + threadid() * orow if st else NULL,
                NULL, 0, True)


cdef inline Py_ssize_t _paired(const Py_ssize_t[:, :, ::1] rt, const Py_ssize_t[::1] rn,
                              Py_ssize_t r) noexcept nogil:
    """``rn[r]`` when the weight gradients of the output rows ``r``, ``r + 1`` can run as one
    pair: as many (1 to 3) row taps, on the same weight rows, row ``r + 1``'s tap ``a`` reading
    row ``r``'s tap ``a + 1``'s source row (stride == dilation); else 0."""
    cdef Py_ssize_t a, k = rn[r]
    if r < 0 or r + 1 >= rt.shape[0] or k < 1 or k > 3 or rn[r + 1] != k:
        return 0
    for a in range(k):
        if rt[r + 1, a, 1] != rt[r, a, 1] or (a + 1 < k and rt[r + 1, a, 0] != rt[r, a + 1, 0]):
            return 0
    return k


def _backward_weight_1(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                       floating[:, :, :, :, ::1] parts, rows, const Py_ssize_t[:, ::1] runs,
                       floating[:, ::1] bparts, bint bias):
    """M == 1: ``parts[thread]`` += the weight gradient of the rows of gy that thread ran (row
    ``r`` of image ``n`` one task, or with ``r + 1`` where they pair up), ``bparts[thread]`` +=
    their pixels when ``bias``."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef Py_ssize_t OH = gy.shape[1], t, n, r, k
    with nogil:
        for t in prange(gy.shape[0] * OH, schedule="static", num_threads=parts.shape[0]):
            n = t // OH
            r = t - n * OH
            if gy.shape[2] and not (r % 2 and _paired(rt, rn, r - 1)):
                # rows r, r + 1 paired (r even): one pass over their source rows
                k = _paired(rt, rn, r) if r % 2 == 0 and r + 1 < OH else 0
                _dw(t, rt, rn, x, NULL, &parts[threadid(), 0, 0, 0, 0],
                    parts.shape[2] * x.shape[3], runs, NULL, NULL, &gy[0, 0, 0, 0],
                    &bparts[threadid(), 0] if bias else NULL, gy.shape[2], NULL,
                    &gy[n, r + 1, 0, 0] if k else NULL, rt[r + 1, k - 1, 0] if k else 0)


cdef inline void _madd(Py_ssize_t C, Py_ssize_t M, const floating* a, const floating* b,
                       floating* out) noexcept nogil:
    """``out[c*M + m] += a[c] * b[c*M + m]``."""
    cdef Py_ssize_t c, m
    cdef floating v
    for c in range(C):
        v = a[c]
        for m in range(M):
            out[c * M + m] += v * b[c * M + m]


cdef inline void _dot_add(Py_ssize_t C, Py_ssize_t M, const floating* a, const floating* b,
                          floating* out) noexcept nogil:
    """``out[c] += sum over m of a[c*M + m] * b[c*M + m]`` for ``c < C``."""
    cdef Py_ssize_t c, m
    cdef floating s
    for c in range(C):
        s = 0
        for m in range(M):
            s = s + a[c * M + m] * b[c * M + m]
        out[c] += s


def _gather_m(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] w,
              floating[:, :, :, ::1] out, rows, cols, Py_ssize_t M, bint adjoint, b):
    """M > 1: ``out[n, r, q]`` = sum over the taps ``rows[r]`` x ``cols[q]`` of ``src * w``
    (+ b): the forward pass (src = x, out = y) or, ``adjoint``, the input gradient (src = gy,
    out = gx)."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef const floating[::1] bv
    cdef const floating* bp = NULL
    if b is not None:
        bv = b
        bp = &bv[0]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], CM = w.shape[3], C = CM // M
    cdef Py_ssize_t t, n, r, q, a, k
    cdef const floating* sp
    cdef const floating* wp
    cdef floating* op
    with nogil:
        # each (n, r) owns the row out[n, r]
        for t in prange(out.shape[0] * OH, schedule="static"):
            n = t // OH
            r = t - n * OH
            for q in range(OW):
                op = &out[n, r, q, 0]
                if bp:
                    for k in range(out.shape[3]):
                        op[k] = bp[k]
                else:
                    memset(op, 0, out.shape[3] * sizeof(floating))
                for a in range(rn[r]):
                    sp = &src[n, rt[r, a, 0], 0, 0]
                    wp = &w[rt[r, a, 1], 0, 0, 0]
                    for k in range(cn[q]):
                        if adjoint:
                            _dot_add(C, M, sp + ct[q, k, 0] * CM, wp + ct[q, k, 1] * CM, op)
                        else:
                            _madd(C, M, sp + ct[q, k, 0] * C, wp + ct[q, k, 1] * CM, op)


def _backward_weight_m(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                       floating[:, :, :, :, ::1] parts, rows, cols, Py_ssize_t M):
    """M > 1: ``parts[thread]`` += the weight gradient of the output rows that thread ran,
    pixel by pixel (the pixel of gy stays in L1 across the taps)."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t OH = gy.shape[1], OW = gy.shape[2], C = x.shape[3]
    cdef Py_ssize_t t, n, oh, ow, a, k
    with nogil:
        for t in prange(gy.shape[0] * OH, schedule="static", num_threads=parts.shape[0]):
            n = t // OH
            oh = t - n * OH
            for ow in range(OW):
                for a in range(rn[oh]):
                    for k in range(cn[ow]):
                        _madd(C, M, &x[n, rt[oh, a, 0], ct[ow, k, 0], 0], &gy[n, oh, ow, 0],
                              &parts[threadid(), rt[oh, a, 1], ct[ow, k, 1], 0, 0])
