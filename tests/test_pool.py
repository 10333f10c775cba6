"""Max/average/global pooling, forward and backward, on every backend against the reference."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
from fastconv import functional as F, layers as L
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


def _pool_kwargs(case, data_format):
    return dict(pool_size=(case.kh, case.kw), strides=case.strides, padding=case.padding,
                data_format=data_format)


def _winner_offsets(x, kw):
    """Each window's first NaN, else first maximum, as its offset i*kw + j (x NHWC NumPy)."""
    g = F._prepare_pool(x, kw["pool_size"], kw["strides"], kw["padding"], "channels_last",
                        "reference")[3]
    idx = np.empty(g.output_shape, np.uint8)
    for oh in range(g.oh):
        for ow in range(g.ow):
            h0, w0 = oh * g.sh - g.pt, ow * g.sw - g.pl
            cells = [(i, j) for i in range(g.kh) for j in range(g.kw)
                     if 0 <= h0 + i < g.h and 0 <= w0 + j < g.w]
            window = np.stack([x[:, h0 + i, w0 + j] for i, j in cells])
            idx[:, oh, ow] = np.array([i * g.kw + j for i, j in cells])[window.argmax(0)]
    return idx


def _check_indices(name, xp, dtype, data_format, case, seed, ties):
    """return_indices gives max_pool2d's output and the winners' offsets; the backward pass
    from them (x's values all NaN: never read) equals the reference's from x."""
    x = _x(case, data_format, dtype, seed, ties)
    if ties:
        x[np.random.default_rng(seed).random(x.shape) < 0.05] = np.nan
    kw = _pool_kwargs(case, data_format)
    y, idx = fastconv.max_pool2d(xp.asarray(x), backend=name, return_indices=True, **kw)
    assert idx.dtype == np.uint8 and idx.shape == y.shape
    np.testing.assert_array_equal(to_numpy(y),
                                  to_numpy(fastconv.max_pool2d(xp.asarray(x), backend=name, **kw)))
    last = data_format == "channels_last"
    expected = _winner_offsets(x if last else x.transpose(0, 2, 3, 1),
                               dict(kw, data_format="channels_last"))
    got = to_numpy(idx)
    np.testing.assert_array_equal(got if last else got.transpose(0, 2, 3, 1), expected)
    dy = random_array(np.random.default_rng(seed + 1), y.shape, dtype)
    ghost = xp.broadcast_to(xp.asarray(dtype(np.nan)), x.shape)
    dx = fastconv.max_pool2d_backward(xp.asarray(dy), ghost, backend=name, indices=idx, **kw)
    assert_close(to_numpy(dx), fastconv.max_pool2d_backward(dy, x, backend="reference", **kw),
                 dtype, case.kh * case.kw)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_max_pool_indices(backend, xp, dtype, data_format, case, seed, ties):
    """The kernels on cython/numba; on cupy (skipped without a GPU) the array-op fallback."""
    _check_indices(backend, xp, dtype, data_format, case, seed, ties)


@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1))
def test_max_pool_indices_array_op_fallback(case, seed):
    """Backends without offset kernels (here the reference) compute and scatter them with
    array operations."""
    _check_indices("reference", np, np.float64, "channels_last", case, seed, True)


def test_max_pool_indices_are_checked():
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    dy = np.ones_like(y)
    for bad, match in [(idx.astype(np.int64), "uint8"), (idx[:, :2], "uint8 of dy's shape"),
                       (np.full_like(idx, 4), "offset 4, outside the 2x2 window")]:
        with pytest.raises(ValueError, match=match):
            fastconv.max_pool2d_backward(dy, x, 2, indices=bad)
    big = np.zeros((1, 17, 16, 1), np.float32)
    big[0, 16, 15, 0] = 1
    with pytest.raises(ValueError, match="at most 256 cells, got 17x16"):
        fastconv.max_pool2d(big, (17, 16), return_indices=True)
    with pytest.raises(ValueError, match="at most 256 cells"):
        fastconv.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), big, (17, 16),
                                     indices=np.zeros((1, 1, 1, 1), np.uint8))
    assert fastconv.max_pool2d(big[:, 1:], 16, return_indices=True).indices.item() == 255


@pytest.mark.parametrize("name", CPU_BACKEND_PARAMS)
def test_max_pooling_layer_keeps_offsets_where_kernels_do(name):
    """In training the layer keeps offsets, not x, on backends with offset kernels."""
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (3, 9, 8, 4)).astype(np.float64)  # ties
    layer = L.MaxPooling2D(3, strides=2, padding="same")
    with fastconv.use_backend(name):
        y, ctx = layer.forward(x, training=True)
        assert isinstance(ctx, tuple) == (name != "reference")
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy, ctx)
        assert layer.forward(x)[1] is x  # inference keeps x: no offsets computed
    kw = dict(pool_size=3, strides=2, padding="same", backend="reference")
    np.testing.assert_array_equal(y, fastconv.max_pool2d(x, **kw))
    assert_close(dx, fastconv.max_pool2d_backward(dy, x, **kw), np.float64, 9)


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
