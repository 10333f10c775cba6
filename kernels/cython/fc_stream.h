/* Non-temporal copies for the Cython kernels (included by their C blocks). */
#ifndef FC_STREAM_H
#define FC_STREAM_H
#include <emmintrin.h>
#include <string.h>

/* dst[:n] = src[:n] (bytes), the 64-byte lines wholly inside dst by non-temporal stores: a
   large output written without first reading its lines into the cache. */
static void fc_stream(char* dst, const char* src, Py_ssize_t n) {
    Py_ssize_t h = (Py_ssize_t)((64 - (size_t)dst % 64) % 64), i;
    if (h > n)
        h = n;
    memcpy(dst, src, h);
    for (i = h; i + 64 <= n; i += 64)
        for (int k = 0; k < 64; k += 16)
            _mm_stream_si128((__m128i*)(dst + i + k),
                             _mm_loadu_si128((const __m128i*)(src + i + k)));
    memcpy(dst + i, src + i, n - i);
    _mm_sfence();
}
#endif
