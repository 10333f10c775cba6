"""conv2d and conv2d_backward on every backend, algorithm, dtype and data format, against the
float64 reference on drawn shapes; finite-difference checks of the gradients themselves."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
from fastconv import backends
from helpers import assert_close, conv_kwargs, layout_shapes, random_array
from strategies import conv_cases
from conftest import CPU_BACKEND_PARAMS, to_numpy

DTYPES = [np.float32, np.float64]
FORMATS = ["channels_last", "channels_first"]
ALGORITHMS = list(fastconv.ALGORITHMS)


def _skip_unavailable(backend, algorithm):
    if backend == "cupy" and algorithm == "winograd":
        pytest.skip("the cupy backend has no Winograd kernels (a forced 'winograd' raises there)")


def _draw_arrays(seed, case, data_format, dtype):
    rng = np.random.default_rng(seed)
    xs, ws, bs = layout_shapes(case, data_format)
    return random_array(rng, xs, dtype), random_array(rng, ws, dtype), random_array(rng, bs, dtype)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_forward_matches_reference(backend, xp, algorithm, dtype, data_format, data, seed):
    _skip_unavailable(backend, algorithm)
    case = data.draw(conv_cases(algorithm))
    x, w, b = _draw_arrays(seed, case, data_format, dtype)
    kw = conv_kwargs(case, data_format)
    y = fastconv.conv2d(xp.asarray(x), xp.asarray(w), xp.asarray(b), algorithm=algorithm,
                        backend=backend, **kw)
    expected = fastconv.conv2d(x, w, b, backend="reference", **kw)
    assert y.dtype == dtype and y.shape == expected.shape
    assert_close(to_numpy(y), expected, dtype, case.kh * case.kw * case.c // case.groups)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), need_input_grad=st.booleans())
def test_backward_matches_reference(backend, xp, algorithm, dtype, data_format, data, seed,
                                    need_input_grad):
    _skip_unavailable(backend, algorithm)
    case = data.draw(conv_cases(algorithm))
    x, w, _ = _draw_arrays(seed, case, data_format, dtype)
    kw = conv_kwargs(case, data_format)
    y_shape = fastconv.conv2d(x, w, backend="reference", **kw).shape
    dy = random_array(np.random.default_rng(seed + 1), y_shape, dtype)
    got = fastconv.conv2d_backward(xp.asarray(dy), xp.asarray(x), xp.asarray(w),
                                   algorithm=algorithm, backend=backend,
                                   need_input_grad=need_input_grad, **kw)
    ref = fastconv.conv2d_backward(dy, x, w, backend="reference", **kw)
    terms_w = y_shape[0] * np.prod(y_shape[1:]) / case.o
    assert_close(to_numpy(got.dw), ref.dw, dtype, terms_w)
    assert_close(to_numpy(got.db), ref.db, dtype, terms_w)
    if need_input_grad:
        assert got.dx.shape == x.shape and got.dx.dtype == dtype
        assert_close(to_numpy(got.dx), ref.dx, dtype, case.kh * case.kw * case.o)
    else:
        assert got.dx is None


def _directional_check(fn_loss, grads, arrays, rng, eps=1e-6):
    """Central difference of the loss along a random direction vs the analytic gradient."""
    dirs = [rng.standard_normal(a.shape) for a in arrays]
    plus = fn_loss(*[a + eps * d for a, d in zip(arrays, dirs)])
    minus = fn_loss(*[a - eps * d for a, d in zip(arrays, dirs)])
    numeric = (plus - minus) / (2 * eps)
    analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, dirs))
    # the loss is bilinear in (x, w): the difference is exact but for the rounding of the loss
    rounding = 100 * np.finfo(np.float64).eps * (abs(plus) + abs(minus)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8 + rounding)


@pytest.mark.parametrize("name", CPU_BACKEND_PARAMS)
@pytest.mark.parametrize("data_format", FORMATS)
@given(case=conv_cases(), seed=st.integers(0, 2**32 - 1))
def test_gradients_by_finite_differences(name, data_format, case, seed):
    """The gradients are derivatives of the forward pass, in float64, on the CPU backends."""
    rng = np.random.default_rng(seed)
    x, w, b = _draw_arrays(seed, case, data_format, np.float64)
    kw = conv_kwargs(case, data_format)
    r = rng.standard_normal(fastconv.conv2d(x, w, backend="reference", **kw).shape)

    def loss(x, w, b):
        return float(np.sum(fastconv.conv2d(x, w, b, backend=name, **kw) * r))

    grads = fastconv.conv2d_backward(r, x, w, backend=name, **kw)
    _directional_check(loss, grads, (x, w, b), rng)


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_im2col_tiles_cover_the_batch(monkeypatch, backend, xp, algorithm):
    """With a workspace of a few rows, the tiled im2col still equals the reference."""
    monkeypatch.setattr(backends.get(backend), "tile_bytes", 3000)
    rng = np.random.default_rng(0)
    x, w = random_array(rng, (3, 11, 9, 5), np.float64), random_array(rng, (3, 3, 5, 7), np.float64)
    dy = random_array(rng, (3, 6, 5, 7), np.float64)
    kw = dict(strides=2, padding=1, algorithm=algorithm, backend=backend)
    got = fastconv.conv2d_backward(xp.asarray(dy), xp.asarray(x), xp.asarray(w), **kw)
    y = fastconv.conv2d(xp.asarray(x), xp.asarray(w), **kw)
    ref = fastconv.conv2d_backward(dy, x, w, strides=2, padding=1, backend="reference")
    assert_close(to_numpy(y), fastconv.conv2d(x, w, strides=2, padding=1, backend="reference"),
                 np.float64, 45)
    for a, e in zip(got, ref):
        assert_close(to_numpy(a), e, np.float64, 100)


@pytest.mark.parametrize("order", ["F", "sliced"])
def test_non_contiguous_inputs_give_identical_results(backend, xp, order):
    rng = np.random.default_rng(1)
    x = random_array(rng, (2, 9, 9, 8), np.float32)
    w = random_array(rng, (3, 3, 4, 6), np.float32)
    if order == "F":
        x2, w2 = np.asfortranarray(x), np.asfortranarray(w)
    else:
        x2 = np.repeat(x, 2, axis=3)[..., ::2]
        w2 = np.repeat(w, 2, axis=0)[::2]
    assert not x2.flags.c_contiguous
    kw = dict(padding="same", groups=2, backend=backend)
    np.testing.assert_array_equal(to_numpy(fastconv.conv2d(xp.asarray(x2), xp.asarray(w2), **kw)),
                                  to_numpy(fastconv.conv2d(xp.asarray(x), xp.asarray(w), **kw)))


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "1x1"])
def test_nan_and_inf_propagate_like_the_reference(backend, xp, algorithm):
    rng = np.random.default_rng(2)
    x = random_array(rng, (2, 6, 6, 3), np.float64)
    x[0, 1, 2, 0], x[1, 4, 4, 2], x[1, 0, 0, 1] = np.nan, np.inf, -np.inf
    k = 1 if algorithm == "1x1" else 3
    w = random_array(rng, (k, k, 3, 4), np.float64)
    y = fastconv.conv2d(xp.asarray(x), xp.asarray(w), algorithm=algorithm, backend=backend)
    ref = fastconv.conv2d(x, w, backend="reference")
    assert np.isnan(ref).any() and np.isinf(ref).any()
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-12)


@pytest.mark.parametrize("data_format", FORMATS)
def test_empty_batch_gives_empty_results(backend, xp, data_format):
    x = xp.zeros((0, 5, 5, 3) if data_format == "channels_last" else (0, 3, 5, 5), np.float32)
    w = xp.zeros((3, 3, 3, 2) if data_format == "channels_last" else (2, 3, 3, 3), np.float32)
    y = fastconv.conv2d(x, w, padding="same", data_format=data_format, backend=backend)
    assert y.shape == ((0, 5, 5, 2) if data_format == "channels_last" else (0, 2, 5, 5))
    grads = fastconv.conv2d_backward(y, x, w, padding="same", data_format=data_format,
                                     backend=backend)
    assert grads.dx.shape == x.shape and grads.dw.shape == w.shape and grads.db.shape == (2,)
    assert not to_numpy(grads.dw).any()
