// Dropout keep-mask: keep[i] = 1 where a counter-based hash of (seed, i) lands at or above
// `threshold` (= rate * 2**32), else 0. Stateless, so the mask depends only on the seed
// (drawn by the layer from its NumPy generator: one seed per step keeps runs reproducible and
// checkpoints exact) and costs one pass over the output. The hash is SplitMix64's finaliser.
// Launched by fastconv/backends/cupy.py; self-contained for NVRTC.
// Exported: dropout_keep_{f32,f64}. Integer arguments are 64-bit `long long`.

typedef long long i64;
typedef unsigned long long u64;

#define GRID_STRIDE(i, total) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
         i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ u64 splitmix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

template <typename T>
__device__ void keep(T* __restrict__ mask, i64 total, i64 seed, i64 threshold) {
    GRID_STRIDE(i, total) {
        u64 h = splitmix64((u64)seed + 0x9E3779B97F4A7C15ULL * (u64)(i + 1));
        mask[i] = (i64)(h >> 32) >= threshold ? T(1) : T(0);
    }
}

#define DROPOUT_KERNELS(T, S)                                                                      \
    extern "C" __global__ void dropout_keep_##S(T* mask, i64 total, i64 seed, i64 threshold) {     \
        keep<T>(mask, total, seed, threshold);                                                     \
    }

DROPOUT_KERNELS(float, f32)
DROPOUT_KERNELS(double, f64)
