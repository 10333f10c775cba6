"""The elementwise kernels (bias + ReLU, ReLU gradient, dropout) against NumPy, on every CPU
backend, and the stateless dropout mask against its NumPy definition, bit for bit."""
import numpy as np
import pytest

import fastconv
from fastconv import _random, backends, functional as F

CPU = [b for b in ("cython", "numba") if b in backends.available()]
DTYPES = [np.float32, np.float64]


def _shape(rng):
    return tuple(int(s) for s in rng.integers(1, 9, rng.integers(1, 5)))


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_bias_act_and_relu_backward(backend, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = _shape(rng)
    z, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape[-1]).astype(dtype)
    z.flat[0] = np.nan
    k = backends.get(backend)
    for bias, relu in [(b, True), (b, False), (None, True)]:
        y = z.copy()
        k.bias_act(y, bias, relu)
        want = z + (0 if bias is None else bias)
        np.testing.assert_array_equal(y, np.maximum(want, 0) if relu else want)
    dy = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(F.relu_backward(dy, z, backend=backend), dy * (z > 0))


@pytest.mark.parametrize("backend", CPU + ["reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_is_its_mask_bit_for_bit(backend, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, 41, 67)).astype(dtype)      # 57,687: several kernel chunks
    for rate, seed in [(0.5, 0), (0.25, 2**62 + 5), (0.9, 17), (0.0, 3)]:
        keep = _random.dropout_keep(x.shape, rate, seed)
        want = x * (keep * dtype(1 / (1 - rate)))
        got = F.dropout(x, rate, seed, backend=backend)
        np.testing.assert_array_equal(got, want)
        assert abs(keep.mean() - (1 - rate)) < 0.01
        half = x.shape[-1] // 2
        assert abs(keep[..., :half].mean() - keep[..., half:].mean()) < 0.02


@pytest.mark.parametrize("backend", CPU)
def test_dropout_noise_shape_and_gradient(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5, 6, 8)).astype(np.float32)
    y = F.dropout(x, 0.5, 9, (4, 1, 1, 8), backend=backend)
    mask = _random.dropout_keep((4, 1, 1, 8), 0.5, 9) * np.float32(2)
    np.testing.assert_array_equal(y, x * mask)
    # dropout is linear: its gradient is the same mask, recomputed from the seed
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = fastconv.layers.Dropout(0.5, noise_shape=(None, 1, 1, None), seed=3)
    layer._ensure_built(x.shape[1:])
    with fastconv.use_backend(backend):
        out, ctx = layer.forward(x, training=True)
        seed, shape = ctx
        mask = _random.dropout_keep(shape, 0.5, seed) * np.float32(2)
        np.testing.assert_array_equal(out, x * mask)
        np.testing.assert_array_equal(layer.backward(dy, ctx), dy * mask)


def test_masks_differ_by_seed_and_match_across_backends():
    x = np.ones((64, 64), np.float32)
    a, b = (F.dropout(x, 0.3, s) for s in (1, 2))
    assert (a != b).mean() > 0.3
    for backend in CPU:
        np.testing.assert_array_equal(F.dropout(x, 0.3, 1, backend=backend), a)


@pytest.mark.parametrize("call, match", [
    (lambda x: F.dropout(x, 1.0, 0), "rate"),
    (lambda x: F.dropout(x, -0.1, 0), "rate"),
    (lambda x: F.dropout(x, 0.5, -1), "seed"),
    (lambda x: F.dropout(x, 0.5, 1.5), "seed"),
    (lambda x: F.dropout(x, 0.5, 0, (2, 3)), "noise_shape"),
    (lambda x: F.dropout(x, 0.5, 0, (2, 2, 5)), "noise_shape"),
    (lambda x: F.relu_backward(x, x[:1]), "shape"),
    (lambda x: F.conv2d(x[None], np.ones((1, 1, 5, 2)), activation="tanh"), "activation"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.ones((2, 3, 5)))


@pytest.mark.parametrize("backend", CPU)
def test_kernel_entry_checks(backend):
    k = backends.get(backend).k.epilogue
    x = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError):
        k.dropout(x, np.empty((4, 5), np.float32), 0, 0, 1.0)           # shape
    with pytest.raises(ValueError):
        k.dropout(x, np.empty((6, 4), np.float32).T, 0, 0, 1.0)         # not contiguous
    with pytest.raises(ValueError):
        k.dropout(x, x, 0, 0, 1.0)                                       # overlap
    with pytest.raises(ValueError):
        k.dropout(x, np.empty_like(x), 0, 2**32 + 1, 1.0)               # threshold
    with pytest.raises(ValueError):
        k.bias_act(x, np.ones(5, np.float32), True)                     # bias length
    with pytest.raises(ValueError):
        k.relu_backward(x, x, np.empty((4, 6), np.float64))             # dtype
    for call in (lambda: k.bias_act([1.0, 2.0], None, True),         # not arrays
                 lambda: k.relu_backward([1.0], x[0, :1], np.empty(1, np.float32)),
                 lambda: k.dropout([1.0], np.empty(1, np.float32), 0, 0, 1.0),
                 lambda: k.dropout(x[0], [0.0] * 6, 0, 0, 1.0)):
        with pytest.raises(ValueError):
            call()
