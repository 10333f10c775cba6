// Direct (grouped, strided, dilated, padded) 2-D convolution, NHWC x HWIO -> NHWC.
// Contract: kernels/README.md. Launched by fastconv/backends/cupy.py; self-contained for NVRTC.
// Exported, each _f32 and _f64: conv_direct_forward, conv_direct_forward_tiled,
// conv_direct_backward_input, conv_direct_backward_weight, conv_direct_sum_partials.
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

// One thread per output element; the channel is the fastest index, so a warp writes y and
// reads w coalesced while its x reads broadcast. Used when a group has few output channels.
template <typename T>
__device__ void forward(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                        const Geom g, i64 O, i64 groups) {
    const i64 Cg = g.C / groups, Og = O / groups;
    GRID_STRIDE(i, g.N * g.OH * g.OW * O) {
        const i64 o = i % O, p = i / O;
        const i64 ow = p % g.OW, r = p / g.OW, oh = r % g.OH, n = r / g.OH;
        const T* xn = x + n * g.H * g.W * g.C + (o / Og) * Cg;
        T acc = 0;
        for (i64 kh = 0; kh < g.KH; ++kh) {
            const i64 ih = oh * g.sh - g.pt + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            for (i64 kw = 0; kw < g.KW; ++kw) {
                const i64 iw = ow * g.sw - g.pl + kw * g.dw;
                if (iw < 0 || iw >= g.W) continue;
                const T* xp = xn + (ih * g.W + iw) * g.C;
                const T* wp = w + (kh * g.KW + kw) * Cg * O + o;
                for (i64 cg = 0; cg < Cg; ++cg) acc += xp[cg] * wp[cg * O];
            }
        }
        y[i] = acc;
    }
}

// Implicit GEMM: per group, y[P, Og] = A[P, K] @ W[K, Og] with P = N*OH*OW output positions,
// K = KH*KW*Cg ordered (kh, kw, cg) (= the HWIO weight rows), A gathered from x on the fly.
// A block of 256 threads computes a BM x BN tile through BK-deep shared-memory slices; thread
// (tx, ty) = (tid % 16, tid / 16) owns the 4x4 outputs (ty + 16i, tx + 16j). The tiles
// (position tile, channel tile, group) are walked grid-stride, uniformly per block.
#define BM 64
#define BN 64
#define BK 16

template <typename T>
__device__ void forward_tiled(const T* __restrict__ x, const T* __restrict__ w,
                              T* __restrict__ y, const Geom g, i64 O, i64 groups) {
    __shared__ T As[BK][BM + 1];  // +1: the A stores (kk = tx varies fastest) spread over banks
    __shared__ T Bs[BK][BN];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const i64 Cg = g.C / groups, Og = O / groups, K = g.KH * g.KW * Cg;
    const i64 P = g.N * g.OH * g.OW;
    const i64 mtiles = (P + BM - 1) / BM, ntiles = (Og + BN - 1) / BN;
    for (i64 t = blockIdx.x; t < mtiles * ntiles * groups; t += gridDim.x) {
        const i64 m0 = (t % mtiles) * BM, n0 = (t / mtiles % ntiles) * BN;
        const i64 c0 = t / (mtiles * ntiles) * Cg;  // first input channel of the group
        const i64 o0 = t / (mtiles * ntiles) * Og;  // first output channel of the group
        // The four positions whose A entries this thread loads: ty + 16i (column kk = tx).
        i64 xbase[4], ih0[4], iw0[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const i64 p = m0 + ty + 16 * i;
            const i64 ow = p % g.OW, r = p / g.OW, oh = r % g.OH, n = r / g.OH;
            xbase[i] = p < P ? n * g.H * g.W * g.C + c0 : -1;
            ih0[i] = oh * g.sh - g.pt;
            iw0[i] = ow * g.sw - g.pl;
        }
        T acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = 0;

        for (i64 k0 = 0; k0 < K; k0 += BK) {
            const i64 k = k0 + tx;
            const i64 cg = k % Cg, khw = k / Cg, dih = khw / g.KW * g.dh, diw = khw % g.KW * g.dw;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const i64 ih = ih0[i] + dih, iw = iw0[i] + diw;
                const bool in =
                    k < K && xbase[i] >= 0 && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
                As[tx][ty + 16 * i] = in ? x[xbase[i] + (ih * g.W + iw) * g.C + cg] : T(0);
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int kk = tid / BN + 4 * i, nn = tid % BN;
                const bool in = k0 + kk < K && n0 + nn < Og;
                Bs[kk][nn] = in ? w[(k0 + kk) * O + o0 + n0 + nn] : T(0);
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                T a[4], b[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
                for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const i64 p = m0 + ty + 16 * i;
            if (p >= P) continue;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const i64 n = n0 + tx + 16 * j;
                if (n < Og) y[p * O + o0 + n] = acc[i][j];
            }
        }
    }
}

// Gather: one thread per input-gradient element sums over the (kh, kw) taps that reach it.
template <typename T>
__device__ void backward_input(const T* __restrict__ gy, const T* __restrict__ w,
                               T* __restrict__ gx, const Geom g, i64 O, i64 groups) {
    const i64 Cg = g.C / groups, Og = O / groups;
    GRID_STRIDE(i, g.N * g.H * g.W * g.C) {
        const i64 c = i % g.C, p = i / g.C;
        const i64 iw = p % g.W, r = p / g.W, ih = r % g.H, n = r / g.H;
        const i64 o0 = c / Cg * Og, cg = c % Cg;
        T acc = 0;
        for (i64 kh = 0; kh < g.KH; ++kh) {
            const i64 th = ih + g.pt - kh * g.dh;
            if (th < 0) break;  // th only decreases with kh
            if (th % g.sh || th / g.sh >= g.OH) continue;
            for (i64 kw = 0; kw < g.KW; ++kw) {
                const i64 tw = iw + g.pl - kw * g.dw;
                if (tw < 0) break;
                if (tw % g.sw || tw / g.sw >= g.OW) continue;
                const T* gp = gy + ((n * g.OH + th / g.sh) * g.OW + tw / g.sw) * O + o0;
                const T* wp = w + ((kh * g.KW + kw) * Cg + cg) * O + o0;
                for (i64 og = 0; og < Og; ++og) acc += gp[og] * wp[og];
            }
        }
        gx[i] = acc;
    }
}

// Weight gradient, race-free: thread (s, kh, kw, cg, o) sums the output rows (n*OH + oh) of
// chunk s into part[s, kh, kw, cg, o]; sum_partials then adds the chunks (part may be gw
// itself when there is one chunk). The output channel is fastest: gy reads coalesce.
template <typename T>
__device__ void backward_weight(const T* __restrict__ gy, const T* __restrict__ x,
                                T* __restrict__ part, const Geom g, i64 O, i64 groups, i64 chunk) {
    const i64 Cg = g.C / groups, Og = O / groups, R = g.N * g.OH;
    const i64 chunks = (R + chunk - 1) / chunk;
    GRID_STRIDE(i, chunks * g.KH * g.KW * Cg * O) {
        i64 q = i;
        const i64 o = q % O; q /= O;
        const i64 cg = q % Cg; q /= Cg;
        const i64 kw = q % g.KW; q /= g.KW;
        const i64 kh = q % g.KH, s = q / g.KH;
        const i64 c = o / Og * Cg + cg, r1 = (s + 1) * chunk < R ? (s + 1) * chunk : R;
        T acc = 0;
        for (i64 r = s * chunk; r < r1; ++r) {
            const i64 n = r / g.OH, ih = (r % g.OH) * g.sh - g.pt + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            const T* xr = x + (n * g.H + ih) * g.W * g.C + c;
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

#define CONV_DIRECT_KERNELS(T, S)                                                                  \
    extern "C" __global__ void conv_direct_forward_##S(const T* x, const T* w, T* y,               \
                                                       GEOM_PARAMS, i64 O, i64 groups) {           \
        forward<T>(x, w, y, GEOM, O, groups);                                                      \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) conv_direct_forward_tiled_##S(               \
        const T* x, const T* w, T* y, GEOM_PARAMS, i64 O, i64 groups) {                            \
        forward_tiled<T>(x, w, y, GEOM, O, groups);                                                \
    }                                                                                              \
    extern "C" __global__ void conv_direct_backward_input_##S(const T* gy, const T* w, T* gx,      \
                                                              GEOM_PARAMS, i64 O, i64 groups) {    \
        backward_input<T>(gy, w, gx, GEOM, O, groups);                                             \
    }                                                                                              \
    extern "C" __global__ void conv_direct_backward_weight_##S(                                    \
        const T* gy, const T* x, T* part, GEOM_PARAMS, i64 O, i64 groups, i64 chunk) {             \
        backward_weight<T>(gy, x, part, GEOM, O, groups, chunk);                                   \
    }                                                                                              \
    extern "C" __global__ void conv_direct_sum_partials_##S(const T* part, T* out, i64 n,          \
                                                            i64 chunks) {                          \
        sum_partials<T>(part, out, n, chunks);                                                     \
    }

CONV_DIRECT_KERNELS(float, f32)
CONV_DIRECT_KERNELS(double, f64)
