"""``functional.matmul`` (the Dense layer's GEMMs, rows split over fastconv's threads) against
the float64 product, and its argument checks."""
import numpy as np
import pytest

import fastconv
from fastconv import backends, functional as F

BACKENDS = [b for b in ("cython", "numba", "reference") if b in backends.available()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_float64(backend, threads, dtype):
    """Random sizes (0 and 1 rows, fewer rows than threads, an empty inner size), ``a`` and
    ``b`` given as transposed views too."""
    rng = np.random.default_rng(threads)
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        for m, k, n in [(0, 3, 2), (1, 5, 3), (2, 0, 4)] + [tuple(rng.integers(1, 70, 3))
                                                            for _ in range(6)]:
            a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
            for a_in, b_in in [(a, b), (np.ascontiguousarray(a.T).T,
                                        np.ascontiguousarray(b.T).T)]:
                got = F.matmul(a_in.astype(dtype), b_in.astype(dtype), backend=backend)
                assert got.shape == (m, n) and got.dtype == dtype
                np.testing.assert_allclose(got, a @ b, rtol=1e-4 if dtype == np.float32 else 1e-12,
                                           atol=1e-4 if dtype == np.float32 else 1e-12)
    finally:
        fastconv.set_num_threads(before)


@pytest.mark.parametrize("a, b, error, match", [
    (np.ones((2, 3)), np.ones((4, 2)), ValueError, "inner sizes"),
    (np.ones((2, 3, 1)), np.ones((3, 2)), ValueError, "2 dimensions"),
    (np.ones((2, 3), np.float32), np.ones((3, 2)), TypeError, "one dtype"),
    (np.ones((2, 3), np.int64), np.ones((3, 2)), TypeError, "float32 or float64"),
])
def test_matmul_rejects_bad_arguments(a, b, error, match):
    with pytest.raises(error, match=match):
        F.matmul(a, b)
