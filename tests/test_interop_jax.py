"""fastconv's conv2d inside JAX (fastconv.interop.jax): values and gradients under jax.jit equal
jax.lax.conv_general_dilated's, in both data formats, with strides, padding, dilation, groups."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

jax = pytest.importorskip("jax", reason="JAX is not installed: pip install '.[jax]'")
import jax.numpy as jnp  # noqa: E402

from fastconv.interop import jax as fj  # noqa: E402
from helpers import layout_shapes  # noqa: E402
from strategies import conv_cases  # noqa: E402

LAYOUTS = {"channels_last": ("NHWC", "HWIO", "NHWC"), "channels_first": ("NCHW", "OIHW", "NCHW")}
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _lax_padding(case):
    g = case.geometry()
    return [(g.pt, g.pb), (g.pl, g.pr)]


def _functions(case, data_format, bias):
    """(fastconv, lax) losses ``sum(conv(x, w, b) * r)`` and the convolutions themselves."""
    kw = dict(strides=case.strides, padding=case.padding, dilation=case.dilation,
              groups=case.groups, data_format=data_format)
    shape = (1, -1, 1, 1) if data_format == "channels_first" else (-1,)

    def ours(x, w, b):
        return fj.conv2d(x, w, b if bias else None, **kw)

    def theirs(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, case.strides, _lax_padding(case),
                                         rhs_dilation=case.dilation,
                                         dimension_numbers=LAYOUTS[data_format],
                                         feature_group_count=case.groups)
        return y + b.reshape(shape) if bias else y
    return ours, theirs


def _check(case, data_format, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w, b = (rng.uniform(-1, 1, s).astype(dtype) for s in layout_shapes(case, data_format))
    ours, theirs = _functions(case, data_format, bias)
    y, expected = jax.jit(ours)(x, w, b), theirs(x, w, b)
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    r = rng.uniform(-1, 1, expected.shape).astype(dtype)
    argnums = (0, 1, 2) if bias else (0, 1)
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a) * r), argnums))(x, w, b)
    want = jax.grad(lambda *a: jnp.sum(theirs(*a) * r), argnums)(x, w, b)
    for got, ref in zip(grads, want, strict=True):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **TOL[dtype])


@pytest.mark.parametrize("data_format", LAYOUTS)
@settings(max_examples=6)
@given(case=conv_cases(), bias=st.booleans(), seed=st.integers(0, 2**31))
def test_values_and_gradients_match_lax_under_jit(data_format, case, bias, seed):
    _check(case, data_format, bias, np.float32, seed)


@given(case=conv_cases(), seed=st.integers(0, 2**31))
@settings(max_examples=4)
def test_float64_matches_lax(case, seed):
    with jax.enable_x64(True):
        _check(case, "channels_first", True, np.float64, seed)


def test_same_padding_is_lax_same():
    x, w = jnp.ones((1, 8, 7, 2)), jnp.ones((4, 3, 2, 3))
    y = fj.conv2d(x, w, strides=(2, 3), padding="same", dilation=1)
    expected = jax.lax.conv_general_dilated(x, w, (2, 3), "SAME",
                                            dimension_numbers=LAYOUTS["channels_last"])
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_vmap_runs_each_batch_element():
    x, w = jnp.arange(2 * 5 * 5 * 6.0).reshape(2, 1, 5, 5, 6) / 100, jnp.ones((3, 3, 2, 3))
    y = jax.vmap(lambda xi: fj.conv2d(xi, w, groups=3))(x)
    np.testing.assert_allclose(y[1], fj.conv2d(x[1], w, groups=3))


def test_errors_at_trace_time():
    x = jnp.ones((1, 5, 5, 4))
    with pytest.raises(TypeError, match="float32 or float64"):
        jax.jit(fj.conv2d)(x.astype(jnp.int32), jnp.ones((3, 3, 4, 2), jnp.int32))
    with pytest.raises(ValueError, match="do not fit"):
        fj.conv2d(x, jnp.ones((3, 3, 3, 2)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        fj.conv2d(x, jnp.ones((7, 7, 4, 2)))
