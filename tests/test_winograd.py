"""algorithm='winograd' (F(2x2,3x3) and F(4x4,3x3), CPU backends) against the float64 reference,
its applicability errors, and the entry checks of its kernels."""
from types import SimpleNamespace

import numpy as np
import pytest

import fastconv
from fastconv import backends
from fastconv.backends._native import NativeBackend
from helpers import random_array, reference
from conftest import CPU_BACKEND_PARAMS

FAST_CPU = [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"]

# Max |error| / max |reference| allowed. Measured on the lecture's dense 3x3 layers
# (bench/shapes.py, 32 images, N(0, 1) inputs, weights scaled by 1/sqrt(9*C)): float32 F(4,3)
# up to 1.8e-5 (cifar6, 256 channels: the transforms' coefficients up to 8 and 1/24 cost a few
# bits), F(2,3) 4e-7 (im2col: 5e-7); float64 up to 2.6e-14. The bounds leave a 5x (float32) and
# 40x (float64) margin.
TOL = {np.float32: 1e-4, np.float64: 1e-12}

CASES = [  # n, h, w, c, o, padding (m = 4 unless noted)
    (3, 13, 13, 5, 7, "same"),                  # cropped last tiles
    (2, 6, 6, 4, 3, "same"),                    # m = 2
    (2, 3, 3, 3, 5, "same"),                    # one tile
    (1, 9, 17, 6, 4, "valid"),
    (2, 10, 5, 3, 2, ((4, 0), (0, 5))),         # padding > 2: negative padding in dx
    (1, 1, 1, 2, 3, 1),                         # m = 2, all but one cell padding
    (4, 8, 7, 70, 66, ((2, 1), (0, 2))),        # more than one 64-channel pass
    (1, 3, 4, 1, 1, "valid"),                   # a 1x2 output
]


def _close(got, ref, dtype):
    dtype = np.dtype(dtype).type
    err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
    assert err <= TOL[dtype], f"relative error {err:.2e} > {TOL[dtype]:.0e}"


def _run(backend, case, dtype, data_format="channels_last"):
    n, h, w, c, o, padding = case
    rng = np.random.default_rng(h * 31 + c)
    cf = data_format == "channels_first"
    x = random_array(rng, (n, c, h, w) if cf else (n, h, w, c), dtype)
    wt = random_array(rng, (o, c, 3, 3) if cf else (3, 3, c, o), dtype)
    kw = dict(padding=padding, data_format=data_format)
    y_ref = reference("conv2d", x, wt, **kw)
    gy = random_array(rng, y_ref.shape, dtype)
    g_ref = reference("conv2d_backward", gy, x, wt, **kw)
    y = fastconv.conv2d(x, wt, algorithm="winograd", backend=backend, **kw)
    g = fastconv.conv2d_backward(gy, x, wt, algorithm="winograd", backend=backend, **kw)
    assert y.dtype == dtype and y.shape == y_ref.shape
    _close(y, y_ref, dtype)
    _close(g.dx, g_ref.dx, dtype)
    _close(g.dw, g_ref.dw, dtype)
    _close(g.db, g_ref.db, dtype)
    return y, g


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", FAST_CPU)
def test_winograd_matches_reference(backend, case, dtype, threads):
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        _run(backend, case, dtype)
    finally:
        fastconv.set_num_threads(old)


@pytest.mark.parametrize("backend", FAST_CPU)
def test_winograd_small_blocks_cross_images_and_repeat_bit_for_bit(monkeypatch, backend):
    """Blocks of 3 tiles (crossing images, a partial last block) on 2 workers; same bits twice."""
    monkeypatch.setattr(NativeBackend, "_winograd_bytes", 1)
    monkeypatch.setattr(NativeBackend, "_winograd_min_tiles", 3)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        case = (5, 9, 6, 3, 4, "same")
        y, g = _run(backend, case, np.float64)
        y2, g2 = _run(backend, case, np.float64)
        _run(backend, (3, 6, 6, 2, 3, "valid"), np.float32, "channels_first")
    finally:
        fastconv.set_num_threads(old)
    for a, b in ((y, y2), (g.dx, g2.dx), (g.dw, g2.dw)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(w=np.zeros((5, 5, 4, 6), np.float32)), "filter 5x5"),
    (dict(strides=2), r"strides \(2, 2\)"),
    (dict(dilation=2), r"dilation \(2, 2\)"),
    (dict(w=np.zeros((3, 3, 2, 6), np.float32), groups=2), "groups=2"),
])
def test_winograd_rejects_other_geometries(kwargs, match):
    args = dict(x=np.zeros((2, 9, 9, 4), np.float32), w=np.zeros((3, 3, 4, 6), np.float32),
                algorithm="winograd") | kwargs
    with pytest.raises(ValueError, match="algorithm 'winograd' needs .*" + match):
        fastconv.conv2d(**args)


def test_winograd_needs_the_kernels():
    """A backend whose kernel set has no winograd (the cupy one) says so."""
    be = NativeBackend("nowino", SimpleNamespace(), np)
    g = fastconv.functional.make_geometry((1, 4, 4, 2), 3, 2, 1, 1, "same", 1)
    x, w = np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 2, 2))
    with pytest.raises(ValueError, match="no kernels on the 'nowino' backend"):
        be.conv2d(x, w, g, "winograd")
    with pytest.raises(ValueError, match="no kernels on the 'nowino' backend"):
        be.conv2d_backward(x, x, w, g, "winograd", need_input_grad=False)


@pytest.mark.parametrize("backend", FAST_CPU)
def test_winograd_kernels_check_their_arguments(backend):
    k = backends.get(backend).k.winograd
    x = np.zeros((2, 5, 5, 3), np.float32)
    y = np.zeros((2, 5, 5, 4), np.float32)
    v = np.zeros((36, 4, 3), np.float32)
    mv = np.zeros((36, 4, 4), np.float32)
    k.input_transform(x, v, 4, 4, 2, 2, 1, 1)            # the last 4 of 2*2*2 tiles: fine
    k.output_transform(mv, y, 4, 4)
    k.output_transform_t(y, mv, 4, 4)
    bad = [
        (k.input_transform, (x, v, 5, 4, 2, 2, 1, 1), "run past"),
        (k.input_transform, (x, v, -1, 4, 2, 2, 1, 1), "t0 must be"),
        (k.input_transform, (x, v, 0, 3, 2, 2, 1, 1), "m must be 2 or 4"),
        (k.input_transform, (x, v[:16], 0, 4, 2, 2, 1, 1), "has shape"),
        (k.input_transform, (x, v.astype(np.float64), 0, 4, 2, 2, 1, 1), "one dtype"),
        (k.input_transform, (x, v[:, ::2], 0, 4, 2, 2, 1, 1), "C-contiguous"),
        (k.input_transform, (v[:, :1].reshape(1, 6, 6, 3), v[:, :1], 0, 4, 1, 1, 0, 0),
         "overlaps|C-contiguous"),
        (k.output_transform, (mv, y, 5, 4), "run past"),
        (k.output_transform, (mv[..., :3], y, 0, 4), "C-contiguous|has shape"),
        (k.output_transform, (mv, y, 0, 2), "has shape"),
        (k.output_transform_t, (y, mv, 0, 4.0), "m must be"),
        (k.output_transform_t, (y, np.zeros((36, 4, 4), np.float32)[:, :, :2], 0, 4),
         "C-contiguous|has shape"),
    ]
    for fn, args, match in bad:
        with pytest.raises(ValueError, match=match):
            fn(*args)
