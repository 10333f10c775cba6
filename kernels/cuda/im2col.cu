// im2col / col2im over row tiles of whole output rows, NHWC. Contract: kernels/README.md.
// Launched by fastconv/backends/cupy.py; self-contained for NVRTC.
// Exported: im2col_{im2col,col2im}_{f32,f64}. Every integer argument is a 64-bit `long long`.
//
// cols[grp, m, (kh*KW + kw)*Cg + cg], m = r*OW + ow for the tile's output rows r < rows
// (global output row r0 + r = n*OH + oh); groups are `gstride` elements apart (the caller may
// pass a slice of a larger workspace), rows and columns within a group are contiguous.

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

// One thread per column element, cg fastest: reads of x and writes of cols both coalesce.
template <typename T>
__device__ void im2col(const T* __restrict__ x, T* __restrict__ cols, const Geom g, i64 Cg, i64 r0,
                       i64 rows, i64 gstride) {
    const i64 K = g.KH * g.KW * Cg, M = rows * g.OW;
    GRID_STRIDE(i, g.C / Cg * M * K) {
        const i64 k = i % K, q = i / K, m = q % M, grp = q / M;
        const i64 cg = k % Cg, khw = k / Cg;
        const i64 ow = m % g.OW, r = r0 + m / g.OW, oh = r % g.OH, n = r / g.OH;
        const i64 ih = oh * g.sh - g.pt + khw / g.KW * g.dh;
        const i64 iw = ow * g.sw - g.pl + khw % g.KW * g.dw;
        const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        cols[grp * gstride + m * K + k] =
            in ? x[((n * g.H + ih) * g.W + iw) * g.C + grp * Cg + cg] : T(0);
    }
}

// Adjoint of im2col, race-free: one thread per element of the input rows [row0, row0 + nrows)
// (flattened n*H + ih; the caller bounds the rows the tile can reach) gathers every column
// entry that came from it and ADDS the sum into gx.
template <typename T>
__device__ void col2im(const T* __restrict__ cols, T* __restrict__ gx, const Geom g, i64 Cg, i64 r0,
                       i64 rows, i64 gstride, i64 row0, i64 nrows) {
    const i64 K = g.KH * g.KW * Cg;
    GRID_STRIDE(i, nrows * g.W * g.C) {
        const i64 c = i % g.C, q = i / g.C, iw = q % g.W, hr = row0 + q / g.W;
        const i64 ih = hr % g.H, n = hr / g.H;
        const T* cp = cols + c / Cg * gstride + c % Cg;
        T acc = 0;
        bool hit = false;
        for (i64 kh = 0; kh < g.KH; ++kh) {
            const i64 th = ih + g.pt - kh * g.dh;
            if (th < 0) break;  // th only decreases with kh
            const i64 r = n * g.OH + th / g.sh - r0;
            if (th % g.sh || th / g.sh >= g.OH || r < 0 || r >= rows) continue;
            for (i64 kw = 0; kw < g.KW; ++kw) {
                const i64 tw = iw + g.pl - kw * g.dw;
                if (tw < 0) break;
                if (tw % g.sw || tw / g.sw >= g.OW) continue;
                acc += cp[(r * g.OW + tw / g.sw) * K + (kh * g.KW + kw) * Cg];
                hit = true;
            }
        }
        if (hit) gx[hr * g.W * g.C + iw * g.C + c] += acc;
    }
}

#define IM2COL_KERNELS(T, S)                                                                       \
    extern "C" __global__ void im2col_im2col_##S(const T* x, T* cols, GEOM_PARAMS, i64 Cg,         \
                                                 i64 r0, i64 rows, i64 gstride) {                  \
        im2col<T>(x, cols, GEOM, Cg, r0, rows, gstride);                                           \
    }                                                                                              \
    extern "C" __global__ void im2col_col2im_##S(const T* cols, T* gx, GEOM_PARAMS, i64 Cg,        \
                                                 i64 r0, i64 rows, i64 gstride, i64 row0,          \
                                                 i64 nrows) {                                      \
        col2im<T>(cols, gx, GEOM, Cg, r0, rows, gstride, row0, nrows);                             \
    }

IM2COL_KERNELS(float, f32)
IM2COL_KERNELS(double, f64)
