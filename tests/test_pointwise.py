"""The CPU pointwise (1x1, unpadded) kernels against the float64 reference: random shapes past
their register blocks (odd channels, outputs not a multiple of 8/16), strides, groups, bias and
ReLU fused; the same bits on every call; bad arguments raise ValueError."""
import numpy as np
import pytest

import fastconv
from fastconv import backends
from helpers import assert_close, random_array, reference
from conftest import CPU_BACKEND_PARAMS

NATIVE = [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"]
# n, h, w, c, o, groups, strides
CASES = [(2, 5, 7, 192, 16, 1, 1), (3, 4, 9, 7, 5, 1, 1), (2, 6, 5, 9, 19, 1, (2, 3)),
         (1, 7, 7, 39, 33, 3, (1, 2)), (2, 4, 9, 1, 1, 1, 3), (1, 3, 3, 20, 70, 1, 1),
         (2, 5, 4, 12, 8, 4, 2), (1, 2, 3, 64, 96, 2, 1)]


@pytest.fixture
def threads(request):
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(request.param)
    yield request.param
    fastconv.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", NATIVE)
def test_pointwise_matches_reference(backend, case, dtype, threads):
    n, h, wd, c, o, groups, strides = case
    rng = np.random.default_rng(c * 31 + o)
    x = random_array(rng, (n, h, wd, c), dtype)
    w = random_array(rng, (1, 1, c // groups, o), dtype)
    b = random_array(rng, (o,), dtype)
    kw = dict(strides=strides, groups=groups)
    pw = backends.get(backend).k.pointwise
    old, pw.MAX_OUTPUTS = pw.MAX_OUTPUTS, o // groups     # the kernels, not the GEMM path
    try:
        for bias, act in ((None, None), (b, "relu"), (b, None)):
            y = fastconv.conv2d(x, w, bias, algorithm="1x1", backend=backend, activation=act, **kw)
            expected = reference("conv2d", x, w, bias, activation=act, **kw)
            assert_close(y, expected, dtype, c // groups)
            if act == "relu":
                assert (y >= 0).all() and (y == 0).any()
        gy = random_array(rng, y.shape, dtype)
        got = fastconv.conv2d_backward(gy, x, w, algorithm="1x1", backend=backend, **kw)
        ref = reference("conv2d_backward", gy, x, w, **kw)
        assert_close(got.dx, ref.dx, dtype, o // groups)
        assert_close(got.dw, ref.dw, dtype, n * h * wd)
        assert_close(got.db, ref.db, dtype, n * h * wd)   # summed in the weight gradient's pass
        again = fastconv.conv2d_backward(gy, x, w, algorithm="1x1", backend=backend, **kw)
        np.testing.assert_array_equal(again.dw, got.dw)      # static splits: the same bits
        np.testing.assert_array_equal(again.dx, got.dx)
        np.testing.assert_array_equal(again.db, got.db)
    finally:
        pw.MAX_OUTPUTS = old


@pytest.mark.parametrize("backend", NATIVE)
def test_relu_keeps_nan(backend):
    k = backends.get(backend).k.pointwise
    x = np.ones((1, 1, 2, 3), np.float32)
    x[0, 0, 1, 0] = np.nan
    y = np.empty((1, 1, 2, 4), np.float32)
    k.forward(x, -np.ones((1, 1, 3, 4), np.float32), y, 1, 1, 1, None, True)
    np.testing.assert_array_equal(y[0, 0, 0], 0)
    assert np.isnan(y[0, 0, 1]).all()


@pytest.mark.parametrize("backend", NATIVE)
def test_entry_checks(backend):
    k = backends.get(backend).k.pointwise
    f = np.float32
    x, w = np.ones((2, 5, 4, 6), f), np.ones((1, 1, 6, 3), f)
    y, gy = np.empty((2, 3, 2, 3), f), np.ones((2, 3, 2, 3), f)
    bad = [
        lambda: k.forward(x, w, np.empty((2, 4, 2, 3), f), 2, 2, 1),          # too many rows
        lambda: k.forward(x, w, np.empty((2, 2, 2, 3), f), 2, 2, 1),          # too few rows
        lambda: k.forward(x, w, y, 1, 1, 1),                                  # stride vs y
        lambda: k.forward(x, np.ones((3, 1, 6, 3), f), y, 2, 2, 1),           # not 1x1
        lambda: k.forward(x, np.ones((1, 1, 5, 3), f), y, 2, 2, 1),           # channels
        lambda: k.forward(x, w, y, 2, 2, 2),                                  # groups
        lambda: k.forward(x, w, y, 0, 2, 1),                                  # stride 0
        lambda: k.forward(x, w, y, 2, 2, 1, np.ones(4, f)),                   # bias length
        lambda: k.forward(x, w, y.astype(np.float64), 2, 2, 1),               # dtype
        lambda: k.forward(x, w, np.empty((2, 2, 3, 3), f).transpose(0, 2, 1, 3), 2, 2, 1),
        lambda: k.backward_input(gy, w, np.empty((2, 5, 5, 6), f), 2, 2, 1),  # gx columns
        lambda: k.backward_input(gy, w, x, 2, 2, 1),                           # gx read-only
        lambda: k.backward_weight(gy, x, np.empty((1, 1, 6, 4), f), 2, 2, 1),  # gw outputs
        lambda: k.backward_weight(gy, x, gy, 2, 2, 1),                         # gw rank/shape
        lambda: k.backward_weight(gy[:1], x, np.empty_like(w), 2, 2, 1),       # batch
        lambda: k.backward_weight(gy, x, np.empty_like(w), 2, 2, 1, gb=np.empty(2, f)),  # gb
    ]
    x.flags.writeable = False   # an output that cannot be written
    for call in bad:
        with pytest.raises(ValueError):
            call()
