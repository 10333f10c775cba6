"""The CPU depthwise kernels on channel counts past their register blocks (32 float32 / 16
float64 channels, plus a tail), against the float64 reference, on 1 and 2 threads."""
import numpy as np
import pytest

import fastconv
from fastconv import backends
from helpers import assert_close, random_array, reference
from conftest import CPU_BACKEND_PARAMS

CASES = [  # c, m, kh, kw, strides, padding, dilation
    (70, 1, 3, 3, (1, 1), "same", (1, 1)),
    (64, 1, 3, 3, (2, 2), "same", (1, 1)),
    (33, 1, 5, 2, (2, 3), ((2, 0), (1, 3)), (2, 1)),
    (48, 1, 3, 3, (1, 1), "valid", (2, 2)),
    (35, 2, 3, 3, (1, 2), "same", (1, 1)),
    (17, 3, 2, 4, (3, 1), ((1, 1), (0, 2)), (1, 2)),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"])
def test_depthwise_blocks_match_reference(backend, case, dtype, threads):
    c, m, kh, kw, strides, padding, dilation = case
    rng = np.random.default_rng(c * 7 + m)
    x = random_array(rng, (3, 11, 9, c), dtype)
    w = random_array(rng, (kh, kw, 1, c * m), dtype)
    args = dict(strides=strides, padding=padding, dilation=dilation, groups=c)
    y_ref = reference("conv2d", x, w, **args)
    gy = random_array(rng, y_ref.shape, dtype)
    g_ref = reference("conv2d_backward", gy, x, w, **args)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        y = fastconv.conv2d(x, w, algorithm="depthwise", backend=backend, **args)
        g = fastconv.conv2d_backward(gy, x, w, algorithm="depthwise", backend=backend, **args)
    finally:
        fastconv.set_num_threads(old)
    assert_close(y, y_ref, dtype, kh * kw)
    assert_close(g.dx, g_ref.dx, dtype, kh * kw * m)
    assert_close(g.dw, g_ref.dw, dtype, y_ref[..., 0].size)


@pytest.mark.parametrize("backend", [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"])
def test_depthwise_kernels_overwrite_outputs_with_no_real_cell(backend):
    """An output whose every tap reads padding is zero, whatever the output held before."""
    k = backends.get(backend).k
    x = np.ones((1, 1, 1, 40), np.float32)
    w = np.ones((1, 1, 1, 40), np.float32)
    y = np.full((1, 3, 3, 40), np.nan, np.float32)
    k.depthwise.forward(x, w, y, 1, 1, 1, 1, 1, 1)     # only y[0, 1, 1] reads x
    expected = np.zeros_like(y)
    expected[0, 1, 1] = 1
    np.testing.assert_array_equal(y, expected)
    gx = np.full((1, 5, 5, 40), np.nan, np.float32)
    k.depthwise.backward_input(np.ones((1, 2, 2, 40), np.float32), w, gx, 3, 3, 1, 1, 1, 1)
    expected = np.zeros_like(gx)
    expected[0, 2, 2] = 1                               # read by gy[0, 1, 1] only
    np.testing.assert_array_equal(gx, expected)
