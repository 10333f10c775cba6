"""Depthwise 2-D convolution (groups == C, depth multiplier M), NHWC (``kernels/README.md``).

Weights are ``w[KH, KW, 1, C*M]``: output channel ``c*M + m`` reads input channel ``c``. Each
public function checks its arguments in plain Python, lists the filter taps that reach a real
cell along each axis (padded cells read as zeros and are skipped), then runs a fused
(float32/float64) kernel without the GIL, in parallel over rows of the output.

The forward pass and the input gradient are the same gather: every cell of ``out`` sums
``src * w`` over its taps (``src`` = x or gy). With ``M == 1`` the inner loops are ``fc_dot``:
multiply-adds over the contiguous channels, three taps (or, for the weight gradient, three
pixels) per pass over the output. With GCC on x86-64 it is compiled twice, for AVX2+FMA (chosen
at run time when the CPU has them) and for the build's baseline (SSE2 unless
``FASTCONV_NATIVE=1``). ``M > 1`` runs plain loops, tap by tap.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset

from fastconv.kernels.cython.threads import get_max_threads
from fastconv.kernels import _checks
from fastconv.kernels._taps import taps as _taps

cdef extern from *:
    """
    /* target_clones needs GNU ifuncs; Clang and GCC < 12 build the baseline only */
    #if defined(__x86_64__) && defined(__GLIBC__) && !defined(__clang__) && __GNUC__ >= 12 \\
        && !defined(__AVX2__)
    #define FC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
    #else
    #define FC_CLONES
    #endif
    /* out[k] += sum over i < count of a[i*a_step + k] * b[i*b_step + k], for k < n; three terms
       per pass over out where there are three */
    #define FC_DOT(T)                                                                        \
    FC_CLONES static void fc_dot_##T(Py_ssize_t n, Py_ssize_t count, const T* a,            \
                                     Py_ssize_t a_step, const T* b, Py_ssize_t b_step,      \
                                     T* out) {                                              \
        Py_ssize_t i = 0;                                                                   \
        for (; i + 3 <= count; i += 3) {                                                    \
            const T *a0 = a + i * a_step, *a1 = a0 + a_step, *a2 = a1 + a_step;             \
            const T *b0 = b + i * b_step, *b1 = b0 + b_step, *b2 = b1 + b_step;             \
            _Pragma("GCC unroll 2")                                                         \
            for (Py_ssize_t k = 0; k < n; k++)                                              \
                out[k] += a0[k] * b0[k] + a1[k] * b1[k] + a2[k] * b2[k];                    \
        }                                                                                   \
        for (; i < count; i++) {                                                            \
            const T* ai = a + i * a_step;                                                   \
            const T* bi = b + i * b_step;                                                   \
            _Pragma("GCC unroll 4")                                                         \
            for (Py_ssize_t k = 0; k < n; k++)                                              \
                out[k] += ai[k] * bi[k];                                                    \
        }                                                                                   \
    }
    FC_DOT(float)
    FC_DOT(double)
    """
    void fc_dot_float(Py_ssize_t n, Py_ssize_t count, const float* a, Py_ssize_t a_step,
                      const float* b, Py_ssize_t b_step, float* out) noexcept nogil
    void fc_dot_double(Py_ssize_t n, Py_ssize_t count, const double* a, Py_ssize_t a_step,
                       const double* b, Py_ssize_t b_step, double* out) noexcept nogil


def forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w):
    """``y[n, oh, ow, c*M + m]`` = sum over taps ``(i, j)`` of
    ``x[n, oh*sh - pt + i*dil_h, ow*sw - pl + j*dil_w, c] * w[i, j, 0, c*M + m]``.

    x ``(N, H, W, C)``, w ``(KH, KW, 1, C*M)``, y ``(N, OH, OW, C*M)`` (overwritten).
    """
    op = "depthwise.forward"
    _checks.arrays(op, {"x": (x, 4), "w": (w, 4)}, {"y": (y, 4)})
    m, (sh, sw, pt, pl, dil_h, dil_w) = _checks.depthwise(op, x, w, y, "x", "y",
                                                          sh, sw, pt, pl, dil_h, dil_w)
    if y.size:
        _gather(x, w, y, _taps(y.shape[1], w.shape[0], sh, pt, dil_h, x.shape[1], False),
                _taps(y.shape[2], w.shape[1], sw, pl, dil_w, x.shape[2], False), m, False)


def backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w):
    """Gradient of :func:`forward` with respect to x, into ``gx`` (N, H, W, C), overwritten."""
    op = "depthwise.backward_input"
    _checks.arrays(op, {"gy": (gy, 4), "w": (w, 4)}, {"gx": (gx, 4)})
    m, (sh, sw, pt, pl, dil_h, dil_w) = _checks.depthwise(op, gx, w, gy, "gx", "gy",
                                                          sh, sw, pt, pl, dil_h, dil_w)
    if gx.size:
        _gather(gy, w, gx, _taps(gx.shape[1], w.shape[0], sh, pt, dil_h, gy.shape[1], True),
                _taps(gx.shape[2], w.shape[1], sw, pl, dil_w, gy.shape[2], True), m, True)


def backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w):
    """Gradient of :func:`forward` with respect to w, into ``gw`` ``(KH, KW, 1, C*M)``."""
    op = "depthwise.backward_weight"
    _checks.arrays(op, {"gy": (gy, 4), "x": (x, 4)}, {"gw": (gw, 4)})
    m, (sh, sw, pt, pl, dil_h, dil_w) = _checks.depthwise(op, x, gw, gy, "x", "gy",
                                                          sh, sw, pt, pl, dil_h, dil_w)
    # a static split of the output rows, one private accumulator per thread, summed at the end:
    # the same sums in the same order on every call (a dynamic schedule made runs differ)
    parts = np.zeros((max(1, get_max_threads()),) + gw.shape, gw.dtype)
    if gy.size:
        _backward_weight(gy, x, parts,
                         _taps(gy.shape[1], gw.shape[0], sh, pt, dil_h, x.shape[1], False),
                         _taps(gy.shape[2], gw.shape[1], sw, pl, dil_w, x.shape[2], False),
                         m, sw, pl, dil_w)
    np.sum(parts, axis=0, out=gw)


# ------------------------------------------------------------------------------------ kernels
cdef inline void _madd(Py_ssize_t count, Py_ssize_t C, Py_ssize_t M, const floating* a,
                       Py_ssize_t a_step, const floating* b, Py_ssize_t b_step,
                       floating* out) noexcept nogil:
    """``out[c*M + m] += a[i*a_step + c] * b[i*b_step + c*M + m]`` summed over ``i < count``."""
    cdef Py_ssize_t i, c, m
    cdef const floating* bi
    cdef floating v
    if M == 1:
        if floating is float:
            fc_dot_float(C, count, a, a_step, b, b_step, out)
        else:
            fc_dot_double(C, count, a, a_step, b, b_step, out)
        return
    for i in range(count):
        bi = b + i * b_step
        for c in range(C):
            v = a[i * a_step + c]
            for m in range(M):
                out[c * M + m] += v * bi[c * M + m]


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


def _gather(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] w,
            floating[:, :, :, ::1] out, rows, cols, Py_ssize_t M, bint adjoint):
    """``out[n, r, q]`` = sum over the taps ``rows[r]`` x ``cols[q]`` of ``src * w``: the forward
    pass (src = x, out = y) or, ``adjoint``, the input gradient (src = gy, out = gx)."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], CM = w.shape[3], C = CM // M
    cdef Py_ssize_t t, n, r, q, a, b
    cdef const floating* sp
    cdef const floating* wp
    cdef floating* op
    with nogil:
        # each (n, r) owns the row out[n, r]
        for t in prange(out.shape[0] * OH, schedule="dynamic"):
            n = t // OH
            r = t - n * OH
            for q in range(OW):
                op = &out[n, r, q, 0]
                memset(op, 0, out.shape[3] * sizeof(floating))
                if cn[q] == 0:
                    continue
                for a in range(rn[r]):
                    sp = &src[n, rt[r, a, 0], 0, 0]
                    wp = &w[rt[r, a, 1], 0, 0, 0]
                    if M == 1:
                        # the column taps of one row are evenly spaced: one pass over the channels
                        b = cn[q] - 1
                        _madd(cn[q], C, 1, sp + ct[q, 0, 0] * C,
                              (ct[q, b, 0] - ct[q, 0, 0]) // max(b, 1) * C,
                              wp + ct[q, 0, 1] * C, (ct[q, b, 1] - ct[q, 0, 1]) // max(b, 1) * C,
                              op)
                        continue
                    for b in range(cn[q]):
                        if adjoint:
                            _dot_add(C, M, sp + ct[q, b, 0] * CM, wp + ct[q, b, 1] * CM, op)
                        else:
                            _madd(1, C, M, sp + ct[q, b, 0] * C, 0, wp + ct[q, b, 1] * CM, 0, op)


def _backward_weight(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                     floating[:, :, :, :, ::1] parts, rows, cols, Py_ssize_t M, Py_ssize_t sw,
                     Py_ssize_t pl, Py_ssize_t dil_w):
    """``parts[thread]`` += the weight gradient of the output rows that thread ran."""
    cdef const Py_ssize_t[:, :, ::1] rt = rows[0]
    cdef const Py_ssize_t[::1] rn = rows[1]
    cdef const Py_ssize_t[:, :, ::1] ct = cols[0]
    cdef const Py_ssize_t[::1] cn = cols[1]
    cdef Py_ssize_t KW = parts.shape[2], OH = gy.shape[1], OW = gy.shape[2], C = x.shape[3]
    cdef Py_ssize_t t, n, oh, ow, a, b, j, lo
    # reach[j] = [lo, hi): the output columns whose tap j reads a real input column (hi = lo = 0
    # if none)
    cdef Py_ssize_t[:, ::1] reach = np.zeros((KW, 2), np.intp)
    for ow in range(OW - 1, -1, -1):
        for a in range(cn[ow]):
            j = ct[ow, a, 1]
            reach[j, 0] = ow
            if reach[j, 1] == 0:
                reach[j, 1] = ow + 1
    with nogil:
        for t in prange(gy.shape[0] * OH, schedule="static", num_threads=parts.shape[0]):
            n = t // OH
            oh = t - n * OH
            if M > 1:
                # pixel by pixel: the pixel of gy stays in L1 across the taps
                for ow in range(OW):
                    for a in range(rn[oh]):
                        for b in range(cn[ow]):
                            _madd(1, C, M, &x[n, rt[oh, a, 0], ct[ow, b, 0], 0], 0,
                                  &gy[n, oh, ow, 0], 0,
                                  &parts[threadid(), rt[oh, a, 1], ct[ow, b, 1], 0, 0])
                continue
            # tap by tap, summing the row's output columns three per pass over the channels
            for a in range(rn[oh]):
                for j in range(KW):
                    lo = reach[j, 0]
                    if lo < reach[j, 1]:
                        _madd(reach[j, 1] - lo, C, 1,
                              &x[n, rt[oh, a, 0], lo * sw - pl + j * dil_w, 0], sw * C,
                              &gy[n, oh, lo, 0], C, &parts[threadid(), rt[oh, a, 1], j, 0, 0])
