"""Max/average/global pooling, forward and backward, on every backend against the reference."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
from conftest import CPU_BACKEND_PARAMS, to_numpy
from helpers import assert_close, random_array
from strategies import pool_cases

FORMATS = ["channels_last", "channels_first"]
DTYPES = [np.float32, np.float64]


def _x(case, data_format, dtype, seed, ties=False):
    rng = np.random.default_rng(seed)
    shape = (case.n, case.h, case.w, case.c) if data_format == "channels_last" else \
        (case.n, case.c, case.h, case.w)
    if ties:  # few distinct values: windows with several maxima
        return rng.integers(-2, 3, shape).astype(dtype)
    return random_array(rng, shape, dtype)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "avg"])
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_pool_matches_reference(backend, xp, mode, dtype, data_format, case, seed, ties):
    x = _x(case, data_format, dtype, seed, ties)
    kw = dict(pool_size=(case.kh, case.kw), strides=case.strides, padding=case.padding,
              data_format=data_format)
    fwd, bwd = getattr(fastconv, f"{mode}_pool2d"), getattr(fastconv, f"{mode}_pool2d_backward")
    y = fwd(xp.asarray(x), backend=backend, **kw)
    ref = fwd(x, backend="reference", **kw)
    assert y.dtype == dtype
    assert_close(to_numpy(y), ref, dtype, case.kh * case.kw)
    dy = random_array(np.random.default_rng(seed + 1), ref.shape, dtype)
    dx = bwd(xp.asarray(dy), xp.asarray(x), backend=backend, **kw)
    assert_close(to_numpy(dx), bwd(dy, x, backend="reference", **kw), dtype, case.kh * case.kw)


@pytest.mark.parametrize("name", CPU_BACKEND_PARAMS)
@pytest.mark.parametrize("mode", ["max", "avg"])
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1))
def test_pool_gradients_by_finite_differences(name, mode, case, seed):
    rng = np.random.default_rng(seed)
    x = _x(case, "channels_last", np.float64, seed)
    kw = dict(pool_size=(case.kh, case.kw), strides=case.strides, padding=case.padding,
              backend=name)
    r = rng.standard_normal(getattr(fastconv, f"{mode}_pool2d")(x, **kw).shape)
    d = rng.standard_normal(x.shape)
    eps = 1e-7  # distinct random values: no window changes its winner within eps

    def loss(x):
        return float(np.sum(getattr(fastconv, f"{mode}_pool2d")(x, **kw) * r))

    numeric = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
    grad = getattr(fastconv, f"{mode}_pool2d_backward")(r, x, **kw)
    np.testing.assert_allclose(np.sum(grad * d), numeric, rtol=1e-6, atol=1e-8)


def test_max_pool_nan_wins_and_gets_the_gradient(backend, xp):
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = np.nan  # two NaNs in the first window: the first wins
    y = fastconv.max_pool2d(xp.asarray(x), backend=backend)
    assert np.isnan(to_numpy(y)[0, 0, 0, 0]) and to_numpy(y)[0, 1, 1, 0] == 15
    dx = to_numpy(fastconv.max_pool2d_backward(xp.ones_like(y), xp.asarray(x), backend=backend))
    assert dx[0, 0, 1, 0] == 1 and dx[0, 1, 0, 0] == 0 and dx.sum() == 4


@pytest.mark.parametrize("data_format", FORMATS)
def test_global_avg_pool(data_format):
    rng = np.random.default_rng(3)
    x = random_array(rng, (2, 5, 7, 3), np.float64)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2).copy()
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    y = fastconv.global_avg_pool2d(x, data_format=data_format)
    np.testing.assert_allclose(y, x.mean(axis=axes))
    dy = rng.standard_normal(y.shape)
    dx = fastconv.global_avg_pool2d_backward(dy, x, data_format=data_format)
    np.testing.assert_allclose(np.sum(dx * x), np.sum(dy * y))  # adjoint of a linear map
