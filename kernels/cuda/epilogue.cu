// Convolution epilogue, in place over a C-contiguous NHWC output y[..., O]: add the bias
// b[O] (when `bias`), then ReLU (when `relu`; NaN stays NaN, as in NumPy's maximum).
// Launched by fastconv/backends/cupy.py; self-contained for NVRTC.
// Exported: epilogue_bias_act_{f32,f64}. Integer arguments are 64-bit `long long`.

typedef long long i64;

#define GRID_STRIDE(i, total) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
         i += (i64)blockDim.x * gridDim.x)

template <typename T>
__device__ void bias_act(T* __restrict__ y, const T* __restrict__ b, i64 total, i64 O, i64 bias,
                         i64 relu) {
    GRID_STRIDE(i, total) {
        T v = y[i];
        if (bias) v += b[i % O];
        if (relu && v < T(0)) v = T(0);
        y[i] = v;
    }
}

#define EPILOGUE_KERNELS(T, S)                                                                     \
    extern "C" __global__ void epilogue_bias_act_##S(T* y, const T* b, i64 total, i64 O,           \
                                                     i64 bias, i64 relu) {                         \
        bias_act<T>(y, b, total, O, bias, relu);                                                   \
    }

EPILOGUE_KERNELS(float, f32)
EPILOGUE_KERNELS(double, f64)
