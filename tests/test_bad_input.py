"""Bad input gets a clear ValueError/TypeError naming the argument; the kernels themselves
refuse arrays whose shapes disagree, so no call can read or write out of bounds."""
import sys

import numpy as np
import pytest

import fastconv
from fastconv import backends

X = np.zeros((2, 8, 8, 4), np.float32)
W = np.zeros((3, 3, 4, 6), np.float32)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(x=np.zeros((8, 8, 4), np.float32)), ValueError, "x must have 4 dimensions"),
    (dict(w=np.zeros((3, 3, 4), np.float32)), ValueError, "w must have 4 dimensions"),
    (dict(w=np.zeros((3, 3, 5, 6), np.float32)), ValueError, "does not fit x with 4 channels"),
    (dict(groups=3), ValueError, "groups=3"),
    (dict(groups=0), ValueError, "groups must be a positive int"),
    (dict(w=np.zeros((3, 3, 2, 5), np.float32), groups=2), ValueError, "out divisible"),
    (dict(w=np.zeros((9, 9, 4, 6), np.float32)), ValueError, "larger than the padded input"),
    (dict(strides=0), ValueError, "strides must be positive"),
    (dict(strides=(1, -2)), ValueError, "strides must be positive"),
    (dict(dilation=0), ValueError, "dilation must be positive"),
    (dict(dilation=5), ValueError, "larger than the padded input"),
    (dict(padding="full"), ValueError, "padding must be"),
    (dict(padding=-1), ValueError, "padding must be"),
    (dict(padding=((1, 2, 3), (0, 0))), ValueError, "padding must be"),
    (dict(strides=True), ValueError, "strides must be an int or a pair"),
    (dict(dilation=(1, True)), ValueError, "dilation must be positive integers"),
    (dict(padding=((True, 0), (0, 0))), ValueError, "padding must be"),
    (dict(groups=True), ValueError, "groups must be a positive int"),
    (dict(data_format="NHWC"), ValueError, "data_format must be one of"),
    (dict(algorithm="fft"), ValueError, "algorithm must be one of"),
    (dict(algorithm="1x1"), ValueError, "needs a 1x1 filter"),
    (dict(algorithm="depthwise"), ValueError, "needs groups == input channels"),
    (dict(x=X.astype(np.int32)), TypeError, "x has dtype int32"),
    (dict(w=W.astype(np.float64)), TypeError, "w has dtype float64 but x has float32"),
    (dict(x=X.astype(np.float16), w=W.astype(np.float16)), TypeError, "float32 or float64"),
    (dict(b=np.zeros(5, np.float32)), ValueError, r"b must have shape \(6,\)"),
    (dict(b=np.zeros(6, np.float64)), TypeError, "b has dtype float64"),
    (dict(x=np.zeros((2, 0, 8, 4), np.float32)), ValueError, "empty spatial or channel"),
    (dict(backend="tpu"), ValueError, "unknown backend 'tpu'"),
])
def test_conv2d_rejects(kwargs, error, match):
    args = dict(x=X, w=W, b=None) | kwargs
    with pytest.raises(error, match=match):
        fastconv.conv2d(**args)


def test_conv2d_takes_numpy_integers_like_ints():
    ints = fastconv.conv2d(X, W, strides=2, padding=((1, 0), 1), dilation=(1, 2))
    numpy_ints = fastconv.conv2d(X, W, strides=np.int64(2), padding=((np.int32(1), 0), np.uint8(1)),
                                 dilation=(np.int16(1), 2))
    np.testing.assert_array_equal(ints, numpy_ints)


def test_conv2d_backward_rejects_a_wrong_dy():
    with pytest.raises(ValueError, match="dy has shape"):
        fastconv.conv2d_backward(np.zeros((2, 7, 7, 6), np.float32), X, W)
    with pytest.raises(TypeError, match="dy has dtype float64"):
        fastconv.conv2d_backward(np.zeros((2, 6, 6, 6)), X, W)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(pool_size=0), ValueError, "pool size must be positive"),
    (dict(pool_size=9), ValueError, "larger than the padded input"),
    (dict(strides=0), ValueError, "strides must be positive"),
    (dict(padding=2), ValueError, "must be smaller than the pool size"),
    (dict(x=np.zeros((8, 8, 4))), ValueError, "x must have 4 dimensions"),
    (dict(x=np.zeros((1, 8, 8, 4), np.int64)), TypeError, "float32 or float64"),
])
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pooling_rejects(op, kwargs, error, match):
    args = dict(x=X) | kwargs
    with pytest.raises(error, match=match):
        getattr(fastconv, op)(**args)


def test_missing_backend_names_the_installed_ones(monkeypatch):
    monkeypatch.delitem(backends._loaded, "numba", raising=False)
    monkeypatch.delitem(sys.modules, "fastconv.backends.numba", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    with pytest.raises(fastconv.BackendUnavailableError, match="Installed backends: .*cython"):
        fastconv.conv2d(X, W, backend="numba")


KERNEL_CALLS = {
    "conv_direct.forward": lambda k: k.conv_direct.forward(
        X, W, np.zeros((2, 6, 6, 7), np.float32), 1, 1, 0, 0, 1, 1, 1),
    "conv_direct.backward_input": lambda k: k.conv_direct.backward_input(
        np.zeros((2, 6, 6, 6), np.float32), W, np.zeros((2, 8, 8, 3), np.float32),
        1, 1, 0, 0, 1, 1, 1),
    "conv_direct.backward_weight": lambda k: k.conv_direct.backward_weight(
        np.zeros((3, 6, 6, 6), np.float32), X, np.zeros_like(W), 1, 1, 0, 0, 1, 1, 1),
    "im2col.im2col": lambda k: k.im2col.im2col(
        X, np.zeros((1, 36, 36), np.float32), 11, 3, 3, 6, 6, 1, 1, 0, 0, 1, 1),
    "im2col.col2im": lambda k: k.im2col.col2im(
        np.zeros((1, 36, 35), np.float32), np.zeros((2, 8, 8, 4), np.float32), 0,
        3, 3, 6, 6, 1, 1, 0, 0, 1, 1),
    "depthwise.forward": lambda k: k.depthwise.forward(
        X, np.zeros((3, 3, 1, 6), np.float32), np.zeros((2, 6, 6, 6), np.float32),
        1, 1, 0, 0, 1, 1),
    "pool.max_forward": lambda k: k.pool.max_forward(
        X, np.zeros((2, 4, 4, 5), np.float32), 2, 2, 2, 2, 0, 0),
    "pool.avg_backward": lambda k: k.pool.avg_backward(
        np.zeros((2, 4, 4, 4), np.float32), np.zeros((2, 8, 8, 5), np.float32), 2, 2, 2, 2, 0, 0),
    "stride zero": lambda k: k.conv_direct.forward(
        X, W, np.zeros((2, 6, 6, 6), np.float32), 0, 1, 0, 0, 1, 1, 1),
    "negative padding": lambda k: k.pool.max_forward(
        X, np.zeros((2, 4, 4, 4), np.float32), 2, 2, 2, 2, -3, 0),
}


@pytest.mark.parametrize("call", sorted(KERNEL_CALLS))
def test_kernels_refuse_inconsistent_shapes(backend, call):
    """Every kernel entry checks its arrays against its integers before touching memory."""
    if backend == "cupy":
        pytest.skip("the CuPy kernels have their own guard tests")
    be = backends.get(backend)
    with pytest.raises(ValueError):
        KERNEL_CALLS[call](be.k)
