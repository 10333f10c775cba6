// Max and average 2-D pooling, NHWC, per channel. Contract: kernels/README.md.
// Launched by fastconv/backends/cupy.py; self-contained for NVRTC.
// Exported: pool_{max_forward,max_argmax,max_backward,avg_forward,avg_backward}_{f32,f64}.
// Every integer argument is a 64-bit `long long`; loops are grid-stride, indices 64-bit.
//
// Padded cells are absent: max ignores them, average divides by the number of real cells.
// The caller guarantees every window holds at least one real cell. Max winner: the first NaN
// if the window holds one, else the first maximum, scanning rows then columns.

typedef long long i64;

#define GRID_STRIDE(i, total) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
         i += (i64)blockDim.x * gridDim.x)

// x[N,H,W,C] -> an OHxOW output grid through a KHxKW window: strides, top/left padding, dilation
// (the pooling kernels are called with dh = dw = 1 and ignore them).
struct Geom {
    i64 N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw;
};
#define GEOM_PARAMS i64 N, i64 H, i64 W, i64 C, i64 OH, i64 OW, i64 KH, i64 KW, \
                    i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw
#define GEOM Geom{N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw}

// The real cells [h0, h1) x [w0, w1) of output element p = (n*OH + oh)*OW + ow; returns the
// offset of x[n, 0, 0, 0].
__device__ __forceinline__ i64 window(const Geom& g, i64 p, i64& h0, i64& h1, i64& w0, i64& w1) {
    const i64 ow = p % g.OW, r = p / g.OW, oh = r % g.OH, n = r / g.OH;
    h0 = oh * g.sh - g.pt;
    w0 = ow * g.sw - g.pl;
    h1 = h0 + g.KH < g.H ? h0 + g.KH : g.H;
    w1 = w0 + g.KW < g.W ? w0 + g.KW : g.W;
    h0 = h0 > 0 ? h0 : 0;
    w0 = w0 > 0 ? w0 : 0;
    return n * g.H * g.W * g.C;
}

// The winner of output element i: writes its value to *best and returns its window-local
// index kh*KW + kw.
template <typename T>
__device__ __forceinline__ i64 max_window(const T* __restrict__ x, const Geom& g, i64 i, T* best) {
    i64 h0, h1, w0, w1;
    const T* xc = x + window(g, i / g.C, h0, h1, w0, w1) + i % g.C;
    T b = xc[(h0 * g.W + w0) * g.C];
    i64 bh = h0, bw = w0;
    for (i64 ih = h0; ih < h1; ++ih)
        for (i64 iw = w0; iw < w1; ++iw) {
            const T v = xc[(ih * g.W + iw) * g.C];
            if (v > b || (v != v && b == b)) {  // a larger value, or the first NaN
                b = v;
                bh = ih;
                bw = iw;
            }
        }
    *best = b;
    const i64 p = i / g.C, ow = p % g.OW, oh = p / g.OW % g.OH;
    return (bh - (oh * g.sh - g.pt)) * g.KW + (bw - (ow * g.sw - g.pl));
}

// One thread per output element, channel fastest (coalesced).
template <typename T>
__device__ void max_forward(const T* __restrict__ x, T* __restrict__ y, const Geom g) {
    GRID_STRIDE(i, g.N * g.OH * g.OW * g.C) max_window(x, g, i, y + i);
}

// First pass of the max backward: the window-local index of each output's winner.
template <typename T>
__device__ void max_argmax(const T* __restrict__ x, int* __restrict__ idx, const Geom g) {
    GRID_STRIDE(i, g.N * g.OH * g.OW * g.C) {
        T best;
        idx[i] = (int)max_window(x, g, i, &best);
    }
}

// The output rows [lo, hi] whose windows contain input row ih (called for columns too).
__device__ __forceinline__ void covering(i64 ih, i64 pt, i64 KH, i64 sh, i64 OH, i64& lo, i64& hi) {
    const i64 a = ih + pt - KH + 1;  // oh*sh >= a and oh*sh <= ih + pt
    lo = a > 0 ? (a + sh - 1) / sh : 0;
    hi = (ih + pt) / sh < OH - 1 ? (ih + pt) / sh : OH - 1;
}

// Gather: one thread per input-gradient element adds the gradients of the windows it wins.
template <typename T>
__device__ void max_backward(const int* __restrict__ idx, const T* __restrict__ gy,
                             T* __restrict__ gx, const Geom g) {
    GRID_STRIDE(i, g.N * g.H * g.W * g.C) {
        const i64 c = i % g.C, p = i / g.C;
        const i64 iw = p % g.W, r = p / g.W, ih = r % g.H, n = r / g.H;
        i64 oh0, oh1, ow0, ow1;
        covering(ih, g.pt, g.KH, g.sh, g.OH, oh0, oh1);
        covering(iw, g.pl, g.KW, g.sw, g.OW, ow0, ow1);
        T acc = 0;
        for (i64 oh = oh0; oh <= oh1; ++oh)
            for (i64 ow = ow0; ow <= ow1; ++ow) {
                const i64 j = ((n * g.OH + oh) * g.OW + ow) * g.C + c;
                if (idx[j] == (ih + g.pt - oh * g.sh) * g.KW + (iw + g.pl - ow * g.sw))
                    acc += gy[j];
            }
        gx[i] = acc;
    }
}

// The number of real cells in the window of output (oh, ow).
__device__ __forceinline__ i64 real_cells(const Geom& g, i64 oh, i64 ow) {
    const i64 h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
    const i64 rows = (h0 + g.KH < g.H ? h0 + g.KH : g.H) - (h0 > 0 ? h0 : 0);
    const i64 cols = (w0 + g.KW < g.W ? w0 + g.KW : g.W) - (w0 > 0 ? w0 : 0);
    return rows * cols;
}

// One thread per output element: the mean of the window's real cells.
template <typename T>
__device__ void avg_forward(const T* __restrict__ x, T* __restrict__ y, const Geom g) {
    GRID_STRIDE(i, g.N * g.OH * g.OW * g.C) {
        i64 h0, h1, w0, w1;
        const T* xc = x + window(g, i / g.C, h0, h1, w0, w1) + i % g.C;
        T acc = 0;
        for (i64 ih = h0; ih < h1; ++ih)
            for (i64 iw = w0; iw < w1; ++iw) acc += xc[(ih * g.W + iw) * g.C];
        y[i] = acc / T((h1 - h0) * (w1 - w0));
    }
}

// Gather: one thread per input-gradient element adds its share of every covering window.
template <typename T>
__device__ void avg_backward(const T* __restrict__ gy, T* __restrict__ gx, const Geom g) {
    GRID_STRIDE(i, g.N * g.H * g.W * g.C) {
        const i64 c = i % g.C, p = i / g.C;
        const i64 iw = p % g.W, r = p / g.W, ih = r % g.H, n = r / g.H;
        i64 oh0, oh1, ow0, ow1;
        covering(ih, g.pt, g.KH, g.sh, g.OH, oh0, oh1);
        covering(iw, g.pl, g.KW, g.sw, g.OW, ow0, ow1);
        T acc = 0;
        for (i64 oh = oh0; oh <= oh1; ++oh)
            for (i64 ow = ow0; ow <= ow1; ++ow)
                acc += gy[((n * g.OH + oh) * g.OW + ow) * g.C + c] / T(real_cells(g, oh, ow));
        gx[i] = acc;
    }
}

#define POOL_KERNELS(T, S)                                                                         \
    extern "C" __global__ void pool_max_forward_##S(const T* x, T* y, GEOM_PARAMS) {               \
        max_forward<T>(x, y, GEOM);                                                                \
    }                                                                                              \
    extern "C" __global__ void pool_max_argmax_##S(const T* x, int* idx, GEOM_PARAMS) {            \
        max_argmax<T>(x, idx, GEOM);                                                               \
    }                                                                                              \
    extern "C" __global__ void pool_max_backward_##S(const int* idx, const T* gy, T* gx,           \
                                                     GEOM_PARAMS) {                                \
        max_backward<T>(idx, gy, gx, GEOM);                                                        \
    }                                                                                              \
    extern "C" __global__ void pool_avg_forward_##S(const T* x, T* y, GEOM_PARAMS) {               \
        avg_forward<T>(x, y, GEOM);                                                                \
    }                                                                                              \
    extern "C" __global__ void pool_avg_backward_##S(const T* gy, T* gx, GEOM_PARAMS) {            \
        avg_backward<T>(gy, gx, GEOM);                                                             \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
