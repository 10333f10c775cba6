"""algorithm='winograd' (F(m x m, 3x3), m = 2, 3, 4, CPU backends) against the float64 reference,
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
# bits), F(3,3) up to 8e-6 (mnist3-5), F(2,3) 4e-7 (im2col: 5e-7); float64 up to 2.6e-14.
# The bounds leave a 5x (float32) and 40x (float64) margin.
TOL = {np.float32: 1e-4, np.float64: 1e-12}

CASES = [  # n, h, w, c, o, padding; m of the forward (and of dx where it differs)
    (3, 13, 13, 5, 7, "same"),                  # m = 4, cropped last tiles
    (2, 6, 6, 4, 3, "same"),                    # m = 3
    (2, 3, 3, 3, 5, "same"),                    # m = 3, one tile
    (2, 5, 5, 70, 66, "same"),                  # m = 3, cropped, two 64-channel passes
    (1, 9, 17, 6, 4, "valid"),                  # m = 4
    (2, 10, 5, 3, 2, ((4, 0), (0, 5))),         # m = 4 (dx: m = 3); negative padding in dx
    (1, 1, 1, 2, 3, 1),                         # m = 2, all but one cell padding
    (3, 2, 7, 3, 4, "same"),                    # m = 2, cropped
    (4, 8, 7, 70, 66, ((2, 1), (0, 2))),        # m = 4, two 64-channel passes
    (1, 3, 4, 1, 1, "valid"),                   # m = 2, a 1x2 output
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


def test_winograd_tile_size_takes_the_fewest_multiplies():
    """F(3x3) on 6x6 and 3x3 outputs (the MNIST net's), F(4x4) on the larger, F(2x2) on thin."""
    got = {s: NativeBackend._winograd_tile(*s, np.float32)[0]
           for s in [(6, 6), (3, 3), (5, 5), (13, 13), (7, 7), (28, 28), (2, 7), (1, 1)]}
    assert got == {(6, 6): 3, (3, 3): 3, (5, 5): 3, (13, 13): 4, (7, 7): 4, (28, 28): 4,
                   (2, 7): 2, (1, 1): 2}


@pytest.mark.parametrize("backend", FAST_CPU)
@pytest.mark.parametrize("m", [2, 3, 4])
def test_winograd_one_tile_is_the_correlation(backend, m):
    """``A^T [(G g G^T) * (B^T d B)] A`` through the kernels = the 2-D correlation of one patch."""
    a = m + 2
    _, gm = NativeBackend._winograd_tile(*{2: (1, 1), 3: (3, 3), 4: (4, 4)}[m], np.float64)
    k = backends.get(backend).k.winograd
    rng = np.random.default_rng(m)
    d, g = rng.standard_normal((1, a, a, 1)), rng.standard_normal((3, 3))
    v = np.empty((a * a, 1, 1))
    k.input_transform(d, v, 0, m, 1, 1, 0, 0)
    y = np.empty((1, m, m, 1))
    k.output_transform(v * (gm @ g @ gm.T).reshape(-1, 1, 1), y, 0, m)
    ref = [[np.sum(d[0, i:i + 3, j:j + 3, 0] * g) for j in range(m)] for i in range(m)]
    np.testing.assert_allclose(y[0, :, :, 0], ref, rtol=1e-12, atol=1e-12)


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
    """Blocks of 3 tiles (crossing images, a partial last block) on 2 workers, the fused
    kernel's (where the backend has one) of 6 tiles; same bits twice."""
    monkeypatch.setattr(NativeBackend, "_winograd_bytes", 1)
    monkeypatch.setattr(NativeBackend, "_winograd_min_tiles", 3)
    monkeypatch.setattr(NativeBackend, "_winograd_fused_tiles", 6)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        runs = []
        for _ in range(2):
            runs.append(_run(backend, (5, 9, 6, 3, 4, "same"), np.float64))
            _run(backend, (3, 6, 6, 2, 3, "valid"), np.float32, "channels_first")
            _run(backend, (2, 8, 7, 70, 66, ((2, 1), (0, 2))), np.float32)
    finally:
        fastconv.set_num_threads(old)
    (y, g), (y2, g2) = runs
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
        (k.input_transform, (x, v, 0, 5, 2, 2, 1, 1), "m must be"),
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


def _fused_kernels(backend, name="forward"):
    """The backend's Winograd kernels, if they have the fused ``name`` (Cython's; Numba's
    forward gained nothing and took 10 minutes to compile)."""
    k = backends.get(backend).k.winograd
    if not hasattr(k, name):
        pytest.skip(f"no fused Winograd {name} in the {backend} backend")
    return k


@pytest.fixture
def two_threads():
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    yield
    fastconv.set_num_threads(old)


def _width(k, wide):
    """Skips the AVX-512 GEMMs (``wide``) where the CPU or build has none."""
    if wide and not k.AVX512:
        pytest.skip("this CPU (or build) has no AVX-512 kernels: the wide GEMMs cannot run")
    return wide


@pytest.mark.parametrize("backend", FAST_CPU)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wide", [False, True], ids=["avx2", "avx512"])
def test_winograd_forward_kernel_matches_reference(backend, dtype, wide):
    """The fused kernel on random shapes, tile ranges and blocks (rows and columns past its
    register tiles, short last blocks, 0 channels) writes exactly its tiles' cells, with the
    GEMMs of either vector width."""
    k = _fused_kernels(backend)
    wide = _width(k, wide)
    rng = np.random.default_rng(7)
    for trial in range(8):
        m = (2, 3, 4)[trial % 3]
        n, h, w = rng.integers(1, 4), rng.integers(1, 12), rng.integers(1, 12)
        c, o = (0, 5) if trial == 7 else (rng.integers(1, 80), rng.integers(1, 40))
        pt, pl = rng.integers(-1, 3, 2)
        oh, ow = rng.integers(1, 12, 2)
        th, tw = -(-oh // m), -(-ow // m)
        x, wt = random_array(rng, (n, h, w, c), dtype), random_array(rng, (3, 3, c, o), dtype)
        # the reference: xp[r, q] = x[r - pt, q - pl] (zeros outside x), then the correlation
        xp = np.pad(x.astype(np.float64), ((0, 0), (20, 20), (20, 20), (0, 0)))
        xp = xp[:, 20 - pt:20 - pt + oh + 2, 20 - pl:20 - pl + ow + 2]
        ref = sum(np.einsum("nhwc,co->nhwo", xp[:, i:i + oh, j:j + ow], wt[i, j])
                  for i in range(3) for j in range(3))
        _, gm = NativeBackend._winograd_tile(*{2: (1, 1), 3: (3, 3), 4: (4, 4)}[m], dtype)
        u = np.einsum("ai,ijco,bj->abco", gm, wt, gm).reshape((m + 2) ** 2, c, o).astype(dtype)
        t0 = int(rng.integers(0, n * th * tw))
        cnt = int(rng.integers(0, n * th * tw - t0 + 1))
        y = np.full((n, oh, ow, o), np.nan, dtype)
        k.forward(x, k.panels(u, wide), y, t0, cnt, m, pt, pl, int(rng.integers(1, 14)))
        mine = np.zeros((n, th, tw), bool)
        mine.reshape(-1)[t0:t0 + cnt] = True
        mine = mine.repeat(m, 1).repeat(m, 2)[:, :oh, :ow]
        assert np.isnan(y[~mine]).all()
        if mine.any():
            _close(y[mine], ref[mine], dtype)


@pytest.mark.parametrize("backend", FAST_CPU)
def test_winograd_forward_kernel_checks_its_arguments(backend):
    k = _fused_kernels(backend)
    x = np.zeros((2, 5, 5, 3), np.float32)
    u = np.zeros((36, 1, 3, 16), np.float32)            # panels of 16 float32 columns
    y = np.zeros((2, 5, 5, 4), np.float32)
    k.forward(x, u, y, 4, 4, 4, 1, 1)                   # the last 4 of 2*2*2 tiles: fine
    bad = [
        ((x, u, y, 5, 4, 4, 1, 1), "run past"),
        ((x, u, y, -1, 4, 4, 1, 1), "t0 must be"),
        ((x, u, y, 0, -1, 4, 1, 1), "T must be"),
        ((x, u, y, 0, 1, 5, 1, 1), "m must be"),
        ((x, u, y, 0, 1, 4, 1, 1, 0), "block must be"),
        ((x, u[:25], y, 0, 1, 4, 1, 1), "u has shape"),
        ((x, u[:, :, :2], y, 0, 1, 4, 1, 1), "u has shape|C-contiguous"),
        ((x, u[..., :8], y, 0, 1, 4, 1, 1), "u has shape|C-contiguous"),
        ((x, u, y[:1], 0, 1, 4, 1, 1), "y has shape"),
        ((x, u.astype(np.float64), y, 0, 1, 4, 1, 1), "one dtype"),
        ((x, u, y[..., :3], 0, 1, 4, 1, 1), "C-contiguous|has shape"),
        ((x, u, x.reshape(2, 5, 5, 3)[..., :0], 0, 1, 4, 1, 1), "has shape|overlaps"),
    ]
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            k.forward(*args)


@pytest.mark.parametrize("backend", FAST_CPU)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wide", [False, True], ids=["avx2", "avx512"])
@pytest.mark.parametrize("own", [True, False], ids=["own-sums", "shared-points"])
def test_winograd_weight_grad_kernel_matches_reference(monkeypatch, two_threads, backend, dtype,
                                                       wide, own):
    """The fused weight gradient on random shapes, tile ranges and blocks (channels past its
    6-row and 2-vector register tiles, short last blocks) adds exactly its tiles' products to du:
    the float64 transforms' ``sum_t v[p]^T dm[p]``, with the GEMMs of either vector width, on 2
    threads with sums of their own or sharing each block's points."""
    k = _fused_kernels(backend, "weight_grad")
    wide = _width(k, wide)
    monkeypatch.setattr(k, "_OWN_BYTES", 1 << 40 if own else 0)
    rng = np.random.default_rng(11)
    for trial in range(9):
        m = (2, 3, 4)[trial % 3]
        n, h, w = rng.integers(1, 4), rng.integers(1, 12), rng.integers(1, 12)
        c, o = rng.integers(1, 40), rng.integers(1, 40)
        pt, pl = rng.integers(-1, 3, 2)
        oh, ow = rng.integers(1, 12, 2)
        th, tw = -(-oh // m), -(-ow // m)
        x, gy = random_array(rng, (n, h, w, c), dtype), random_array(rng, (n, oh, ow, o), dtype)
        t0 = int(rng.integers(0, n * th * tw))
        cnt = int(rng.integers(0, n * th * tw - t0 + 1))
        v, dm = np.empty(((m + 2) ** 2, cnt, c)), np.empty(((m + 2) ** 2, cnt, o))
        k.input_transform(x.astype(np.float64), v, t0, m, th, tw, pt, pl)
        k.output_transform_t(gy.astype(np.float64), dm, t0, m)
        start = random_array(rng, ((m + 2) ** 2, c, o), dtype)
        du = start.copy()
        k.weight_grad(x, gy, du, t0, cnt, m, pt, pl, int(rng.integers(1, 14)), wide)
        _close(du - start.astype(np.float64), np.einsum("ptc,ptk->pck", v, dm), dtype)


@pytest.mark.parametrize("backend", FAST_CPU)
def test_winograd_wide_kernels_run_only_where_the_cpu_has_them(monkeypatch, backend):
    """128-byte panels run the AVX-512 GEMMs where the CPU has them (the same result as 64-byte
    ones) and are refused with a clear error where it has not (here: told it has not)."""
    k = _fused_kernels(backend)
    rng = np.random.default_rng(3)
    x, u = rng.standard_normal((1, 6, 6, 5)), rng.standard_normal((36, 5, 9))
    y64, y128 = np.zeros((2, 1, 6, 6, 9))
    k.forward(x, k.panels(u, False), y64, 0, 4, 4, 1, 1)
    if k.AVX512:
        assert k.panels(u).shape == (36, 1, 5, 16)
        k.forward(x, k.panels(u), y128, 0, 4, 4, 1, 1)
        np.testing.assert_allclose(y128, y64, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(k, "AVX512", False)
    assert k.panels(u).shape == (36, 2, 5, 8)
    for call in (lambda: k.panels(u, True),
                 lambda: k.forward(x, np.zeros((36, 1, 5, 16)), y128, 0, 4, 4, 1, 1),
                 lambda: k.weight_grad(x, y64, np.zeros((36, 5, 9)), 0, 4, 4, 1, 1, 6, True)):
        with pytest.raises(ValueError, match="AVX-512"):
            call()


@pytest.mark.parametrize("backend", FAST_CPU)
def test_winograd_weight_grad_kernel_checks_its_arguments(backend):
    k = _fused_kernels(backend, "weight_grad")
    x = np.zeros((2, 5, 5, 3), np.float32)
    gy = np.zeros((2, 5, 5, 4), np.float32)
    du = np.zeros((36, 3, 4), np.float32)
    k.weight_grad(x, gy, du, 4, 4, 4, 1, 1)             # the last 4 of 2*2*2 tiles: fine
    bad = [
        ((x, gy, du, 5, 4, 4, 1, 1), "run past"),
        ((x, gy, du, 0, 1, 4, 1, 1, 0), "block must be"),
        ((x, gy, du[:25], 0, 1, 4, 1, 1), "du has shape"),
        ((x, gy, du[:, :, :3], 0, 1, 4, 1, 1), "du has shape|C-contiguous"),
        ((x, gy[:1], du, 0, 1, 4, 1, 1), "gy has shape"),
        ((x, gy.astype(np.float64), du, 0, 1, 4, 1, 1), "one dtype"),
        ((x, gy, du.reshape(-1)[:gy.size].reshape(gy.shape)[:, :, :, :4], 0, 1, 4, 1, 1),
         "dimensions"),
    ]
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            k.weight_grad(*args)
