"""Row helpers shared by the Cython kernels (inlined into each module that cimports them)."""
from cython cimport floating


cdef inline void add_pixels(floating* acc, const floating* src, Py_ssize_t pixels,
                            Py_ssize_t n) noexcept nogil:
    """``acc[:n]`` += the sum of the ``pixels`` rows ``src[p*n:(p+1)*n]``: a bias gradient's
    share of a band of gy."""
    cdef Py_ssize_t p, k
    for p in range(pixels):
        for k in range(n):
            acc[k] += src[p * n + k]
