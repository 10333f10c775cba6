// Depthwise 2-D convolution, NHWC x HWIO, any depth multiplier M: w[KH, KW, 1, C*M], output
// channel o = c*M + m reads input channel c. Contract: kernels/README.md.
// Launched by fastconv/backends/cupy.py; self-contained for NVRTC.
// Exported: depthwise_{forward,backward_input,backward_weight,sum_partials}_{f32,f64}.
// Every integer argument is a 64-bit `long long`; loops are grid-stride, indices 64-bit.

typedef long long i64;

#define GRID_STRIDE(i, total) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
         i += (i64)blockDim.x * gridDim.x)

// x[N,H,W,C] -> an OHxOW output grid through a KHxKW window: strides, top/left padding, dilation.
struct Geom {
    i64 N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw;
};
#define GEOM_PARAMS i64 N, i64 H, i64 W, i64 C, i64 OH, i64 OW, i64 KH, i64 KW, \
                    i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw
#define GEOM Geom{N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw}

// One thread per output element, channel fastest: y, w and x accesses all coalesce.
template <typename T>
__device__ void forward(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                        const Geom g, i64 M) {
    const i64 O = g.C * M;
    GRID_STRIDE(i, g.N * g.OH * g.OW * O) {
        const i64 o = i % O, p = i / O;
        const i64 ow = p % g.OW, r = p / g.OW, oh = r % g.OH, n = r / g.OH;
        const T* xn = x + n * g.H * g.W * g.C + o / M;
        T acc = 0;
        for (i64 kh = 0; kh < g.KH; ++kh) {
            const i64 ih = oh * g.sh - g.pt + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            for (i64 kw = 0; kw < g.KW; ++kw) {
                const i64 iw = ow * g.sw - g.pl + kw * g.dw;
                if (iw >= 0 && iw < g.W)
                    acc += xn[(ih * g.W + iw) * g.C] * w[(kh * g.KW + kw) * O + o];
            }
        }
        y[i] = acc;
    }
}

// Gather: one thread per input-gradient element sums its M output channels over the taps
// that reach it.
template <typename T>
__device__ void backward_input(const T* __restrict__ gy, const T* __restrict__ w,
                               T* __restrict__ gx, const Geom g, i64 M) {
    const i64 O = g.C * M;
    GRID_STRIDE(i, g.N * g.H * g.W * g.C) {
        const i64 c = i % g.C, p = i / g.C;
        const i64 iw = p % g.W, r = p / g.W, ih = r % g.H, n = r / g.H;
        T acc = 0;
        for (i64 kh = 0; kh < g.KH; ++kh) {
            const i64 th = ih + g.pt - kh * g.dh;
            if (th < 0) break;  // th only decreases with kh
            if (th % g.sh || th / g.sh >= g.OH) continue;
            for (i64 kw = 0; kw < g.KW; ++kw) {
                const i64 tw = iw + g.pl - kw * g.dw;
                if (tw < 0) break;
                if (tw % g.sw || tw / g.sw >= g.OW) continue;
                const T* gp = gy + ((n * g.OH + th / g.sh) * g.OW + tw / g.sw) * O + c * M;
                const T* wp = w + (kh * g.KW + kw) * O + c * M;
                for (i64 m = 0; m < M; ++m) acc += gp[m] * wp[m];
            }
        }
        gx[i] = acc;
    }
}

// Weight gradient, race-free: thread (s, kh, kw, o) sums the output rows (n*OH + oh) of
// chunk s into part[s, kh, kw, 0, o]; sum_partials then adds the chunks (part may be gw
// itself when there is one chunk).
template <typename T>
__device__ void backward_weight(const T* __restrict__ gy, const T* __restrict__ x,
                                T* __restrict__ part, const Geom g, i64 M, i64 chunk) {
    const i64 O = g.C * M, R = g.N * g.OH, chunks = (R + chunk - 1) / chunk;
    GRID_STRIDE(i, chunks * g.KH * g.KW * O) {
        const i64 o = i % O, q = i / O, kw = q % g.KW, kh = q / g.KW % g.KH, s = q / g.KW / g.KH;
        const i64 r1 = (s + 1) * chunk < R ? (s + 1) * chunk : R;
        T acc = 0;
        for (i64 r = s * chunk; r < r1; ++r) {
            const i64 n = r / g.OH, ih = (r % g.OH) * g.sh - g.pt + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            const T* xr = x + (n * g.H + ih) * g.W * g.C + o / M;
            const T* gr = gy + r * g.OW * O + o;
            for (i64 ow = 0; ow < g.OW; ++ow) {
                const i64 iw = ow * g.sw - g.pl + kw * g.dw;
                if (iw >= 0 && iw < g.W) acc += gr[ow * O] * xr[iw * g.C];
            }
        }
        part[i] = acc;
    }
}

// out[i] = sum over s < chunks of part[s, i], in a fixed order (deterministic).
template <typename T>
__device__ void sum_partials(const T* __restrict__ part, T* __restrict__ out, i64 n, i64 chunks) {
    GRID_STRIDE(i, n) {
        T acc = 0;
        for (i64 s = 0; s < chunks; ++s) acc += part[s * n + i];
        out[i] = acc;
    }
}

#define DEPTHWISE_KERNELS(T, S)                                                                    \
    extern "C" __global__ void depthwise_forward_##S(const T* x, const T* w, T* y, GEOM_PARAMS,    \
                                                     i64 M) {                                      \
        forward<T>(x, w, y, GEOM, M);                                                              \
    }                                                                                              \
    extern "C" __global__ void depthwise_backward_input_##S(const T* gy, const T* w, T* gx,        \
                                                            GEOM_PARAMS, i64 M) {                  \
        backward_input<T>(gy, w, gx, GEOM, M);                                                     \
    }                                                                                              \
    extern "C" __global__ void depthwise_backward_weight_##S(const T* gy, const T* x, T* part,     \
                                                             GEOM_PARAMS, i64 M, i64 chunk) {      \
        backward_weight<T>(gy, x, part, GEOM, M, chunk);                                           \
    }                                                                                              \
    extern "C" __global__ void depthwise_sum_partials_##S(const T* part, T* out, i64 n,            \
                                                          i64 chunks) {                            \
        sum_partials<T>(part, out, n, chunks);                                                     \
    }

DEPTHWISE_KERNELS(float, f32)
DEPTHWISE_KERNELS(double, f64)
