"""The OpenMP thread count of the Cython kernels; serial stubs when built without OpenMP."""
import operator

cdef extern from *:
    """
    #if defined(FASTCONV_OPENMP) && FASTCONV_OPENMP
    #include <omp.h>
    #define FASTCONV_HAVE_OPENMP 1
    #else
    static int omp_get_max_threads(void) { return 1; }
    static void omp_set_num_threads(int n) { (void)n; }
    #define FASTCONV_HAVE_OPENMP 0
    #endif
    """
    const int FASTCONV_HAVE_OPENMP
    int omp_get_max_threads() nogil
    void omp_set_num_threads(int n) nogil


def openmp_enabled():
    """True if the kernels were compiled with OpenMP (they run in parallel)."""
    return bool(FASTCONV_HAVE_OPENMP)


def get_max_threads():
    """The number of threads the next parallel kernel will use (1 without OpenMP)."""
    return omp_get_max_threads()


def set_num_threads(n):
    """Run the kernels called from this thread on ``n`` threads (a no-op without OpenMP)."""
    try:
        count = operator.index(n)
    except TypeError:
        count = 0
    if isinstance(n, bool) or count < 1:
        raise ValueError(f"the thread count must be a positive int, got {n!r}")
    omp_set_num_threads(min(count, 1 << 30))
