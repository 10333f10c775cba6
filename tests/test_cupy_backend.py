"""The CuPy backend's kernels (fastconv.backends.cupy) against NumPy float64 references.

Runs only where CuPy and a CUDA GPU exist (skipped with the reason otherwise), except the check
that importing the backend without CuPy raises a clear ImportError. Self-contained: the
references below are written here, independently of the rest of the test suite.
"""
import importlib
import sys

import numpy as np
import pytest

try:
    import cupy
    HAVE_GPU = cupy.cuda.runtime.getDeviceCount() > 0
    REASON = "no CUDA GPU visible to CuPy"
except ImportError:
    cupy, HAVE_GPU, REASON = None, False, "CuPy is not installed"
except Exception as exc:  # CUDARuntimeError: no driver, no device
    cupy, HAVE_GPU, REASON = None, False, f"CuPy cannot reach a GPU: {exc}"

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

# (n, h, w, c, o, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups)
CONV_CASES = [
    (2, 7, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),     # 'same' 3x3
    (1, 9, 8, 4, 6, 3, 2, 2, 3, 2, 0, 0, 1, 2, 1, 2),     # strides, dilation, groups
    (2, 5, 4, 17, 64, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),   # 1x1, tiled forward, K % 16 == 1
    (2, 11, 9, 6, 96, 3, 3, 1, 2, 1, 1, 0, 2, 1, 2, 3),   # tiled forward, groups, odd tiles
    (1, 6, 13, 20, 40, 2, 3, 2, 1, 0, 3, 2, 0, 1, 1, 1),  # tiled, K = 120 spans k-slices
    (3, 4, 4, 6, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 6),     # groups == channels
]


def _random_conv_cases(count, seed=7):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        kh, kw, sh, sw, dh, dw = (int(v) for v in rng.integers(1, 4, 6))
        groups = int(rng.choice([1, 2, 3]))
        c, o = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 5))
        pt, pb, pl, pr = (int(v) for v in rng.integers(0, 3, 4))
        h = dh * (kh - 1) + 1 + int(rng.integers(0, 6))
        w = dw * (kw - 1) + 1 + int(rng.integers(0, 6))
        cases.append((int(rng.integers(1, 3)), h, w, c, o, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw,
                      groups))
    return cases


CONV_CASES += _random_conv_cases(4)


def _out(size, k, s, p0, p1, d):
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _geometry(case):
    n, h, w, c, o, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups = case
    return _out(h, kh, sh, pt, pb, dh), _out(w, kw, sw, pl, pr, dw)


# ---------------------------------------------------------------- NumPy float64 references
def _pad(x, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw):
    """x zero-padded just enough for the OHxOW grid (bottom/right padding implied)."""
    _, h, w, _ = x.shape
    pb = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - h - pt)
    pr = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - w - pl)
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def _taps(xp, oh, ow, kh, kw, sh, sw, dh, dw):
    """(i, j, view of xp under tap (i, j) for every output position) for each filter tap."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                           j * dw:j * dw + (ow - 1) * sw + 1:sw]


def ref_conv(x, w, oh, ow, sh, sw, pt, pl, dh, dw, groups):
    kh, kw, cg, o = w.shape
    og = o // groups
    y = np.zeros((x.shape[0], oh, ow, o))
    for i, j, v in _taps(_pad(x, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw), oh, ow, kh, kw, sh, sw,
                         dh, dw):
        for g in range(groups):
            cs, os_ = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
            y[..., os_] += v[..., cs] @ w[i, j, :, os_]
    return y


def ref_conv_grads(x, w, gy, sh, sw, pt, pl, dh, dw, groups):
    """(gx, gw) of ref_conv for the output gradient gy."""
    kh, kw, cg, o = w.shape
    og, (_, oh, ow, _) = o // groups, gy.shape
    xp = _pad(x, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw)
    gxp, gw = np.zeros(xp.shape), np.zeros(w.shape)
    for (i, j, v), (_, _, gv) in zip(_taps(xp, oh, ow, kh, kw, sh, sw, dh, dw),
                                     _taps(gxp, oh, ow, kh, kw, sh, sw, dh, dw)):
        for g in range(groups):
            cs, os_ = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
            gw[i, j, :, os_] = np.einsum("nhwc,nhwo->co", v[..., cs], gy[..., os_])
            gv[..., cs] += gy[..., os_] @ w[i, j, :, os_].T
    return gxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]], gw


def ref_im2col(x, groups, kh, kw, oh, ow, sh, sw, pt, pl, dh, dw):
    """All columns, (G, N*OH*OW, KH*KW*Cg) ordered (kh, kw, cg)."""
    n, _, _, c = x.shape
    taps = [v for _, _, v in _taps(_pad(x, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw), oh, ow, kh, kw,
                                   sh, sw, dh, dw)]
    cols = np.stack(taps, axis=3).reshape(n, oh, ow, kh * kw, groups, c // groups)
    return cols.transpose(4, 0, 1, 2, 3, 5).reshape(groups, n * oh * ow, -1)


def ref_col2im(cols, x_shape, kh, kw, oh, ow, sh, sw, pt, pl, dh, dw):
    """Adjoint of ref_im2col for all columns."""
    n, h, w, c = x_shape
    g = cols.shape[0]
    blocks = cols.reshape(g, n, oh, ow, kh * kw, c // g).transpose(1, 2, 3, 4, 0, 5)
    blocks = blocks.reshape(n, oh, ow, kh * kw, c)
    gxp = _pad(np.zeros(x_shape), oh, ow, kh, kw, sh, sw, pt, pl, dh, dw)
    for t, (_, _, v) in enumerate(_taps(gxp, oh, ow, kh, kw, sh, sw, dh, dw)):
        v += blocks[..., t, :]
    return gxp[:, pt:pt + h, pl:pl + w]


def ref_pool(mode, x, gy, kh, kw, sh, sw, pt, pl):
    """(y, gx) of max or average pooling, padded cells absent; max: first NaN, else first max."""
    n, h, w, c = x.shape
    _, oh, ow, _ = gy.shape
    y, gx = np.zeros(gy.shape), np.zeros(x.shape)
    for a in range(oh):
        for b in range(ow):
            h0, h1 = max(a * sh - pt, 0), min(a * sh - pt + kh, h)
            w0, w1 = max(b * sw - pl, 0), min(b * sw - pl + kw, w)
            flat = x[:, h0:h1, w0:w1].reshape(n, -1, c)
            if mode == "max":
                k = np.argmax(flat, axis=1)  # first NaN, else first maximum
                y[:, a, b] = np.take_along_axis(flat, k[:, None], 1)[:, 0]
                for ni in range(n):
                    for ci in range(c):
                        r, s = divmod(int(k[ni, ci]), w1 - w0)
                        gx[ni, h0 + r, w0 + s, ci] += gy[ni, a, b, ci]
            else:
                y[:, a, b] = flat.mean(axis=1)
                gx[:, h0:h1, w0:w1] += gy[:, a, b][:, None, None] / flat.shape[1]
    return y, gx


# ---------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def K():
    if not HAVE_GPU:
        pytest.skip(REASON)
    from fastconv.backends.cupy import kernels
    return kernels


def _rand(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _dev(a):
    return cupy.asarray(a)


def _check(actual, expected, dtype):
    np.testing.assert_allclose(cupy.asnumpy(actual), expected, **TOL[dtype])


# ---------------------------------------------------------------- tests
def test_import_without_cupy_raises_clear_importerror(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.delitem(sys.modules, "fastconv.backends.cupy", raising=False)
    with pytest.raises(ImportError, match="CuPy"):
        importlib.import_module("fastconv.backends.cupy")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_direct(K, case, dtype):
    n, h, w, c, o, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups = case
    oh, ow = _geometry(case)
    rng = np.random.default_rng(0)
    x, wt, gy = (_rand(rng, s, dtype) for s in ((n, h, w, c), (kh, kw, c // groups, o),
                                                (n, oh, ow, o)))
    args = (sh, sw, pt, pl, dh, dw, groups)
    y = cupy.full((n, oh, ow, o), np.nan, dtype)
    K.conv_direct.forward(_dev(x), _dev(wt), y, *args)
    _check(y, ref_conv(x.astype(float), wt.astype(float), oh, ow, *args), dtype)
    gx_ref, gw_ref = ref_conv_grads(x.astype(float), wt.astype(float), gy.astype(float), *args)
    gx, gw = cupy.full(x.shape, np.nan, dtype), cupy.full(wt.shape, np.nan, dtype)
    K.conv_direct.backward_input(_dev(gy), _dev(wt), gx, *args)
    K.conv_direct.backward_weight(_dev(gy), _dev(x), gw, *args)
    _check(gx, gx_ref, dtype)
    _check(gw, gw_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_col2im_tiles(K, case, dtype):
    n, h, w, c, o, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups = case
    oh, ow = _geometry(case)
    geo = (kh, kw, oh, ow, sh, sw, pt, pl, dh, dw)
    rng = np.random.default_rng(1)
    x = _rand(rng, (n, h, w, c), dtype)
    full = ref_im2col(x.astype(float), groups, *geo)
    gcols = _rand(rng, full.shape, dtype)
    gx0 = _rand(rng, x.shape, dtype)
    gx = _dev(gx0)
    rows = max(1, (n * oh) // 3 + 1)  # tiles that cross images, the last one partial
    work = cupy.full((groups, rows * ow, full.shape[2]), np.nan, dtype)
    for r0 in range(0, n * oh, rows):
        m = min(rows, n * oh - r0) * ow
        cols = work[:, :m]  # strided over the groups when the tile is partial, as in _native
        K.im2col.im2col(_dev(x), cols, r0, *geo)
        _check(cols, full[:, r0 * ow:r0 * ow + m], dtype)
        cols[...] = _dev(gcols[:, r0 * ow:r0 * ow + m])
        K.im2col.col2im(cols, gx, r0, *geo)
    _check(gx, gx0 + ref_col2im(gcols.astype(float), x.shape, *geo), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    # (n, h, w, c, m, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw)
    (2, 7, 6, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
    (1, 9, 8, 4, 3, 3, 2, 2, 3, 2, 0, 0, 1, 2, 1),
    (2, 5, 7, 5, 2, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1),
    (1, 4, 4, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),
])
def test_depthwise(K, case, dtype):
    n, h, w, c, m, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw = case
    oh, ow = _out(h, kh, sh, pt, pb, dh), _out(w, kw, sw, pl, pr, dw)
    rng = np.random.default_rng(2)
    x, wt, gy = (_rand(rng, s, dtype) for s in ((n, h, w, c), (kh, kw, 1, c * m),
                                                (n, oh, ow, c * m)))
    args = (sh, sw, pt, pl, dh, dw)
    y = cupy.full(gy.shape, np.nan, dtype)
    K.depthwise.forward(_dev(x), _dev(wt), y, *args)
    # Depthwise == grouped convolution with groups = C.
    _check(y, ref_conv(x.astype(float), wt.astype(float), oh, ow, *args, c), dtype)
    gx_ref, gw_ref = ref_conv_grads(x.astype(float), wt.astype(float), gy.astype(float), *args, c)
    gx, gw = cupy.full(x.shape, np.nan, dtype), cupy.full(wt.shape, np.nan, dtype)
    gb = cupy.full(gy.shape[3], np.nan, dtype)
    K.depthwise.backward(_dev(gy), _dev(x), _dev(wt), gx, gw, *args, gb=gb)
    _check(gx, gx_ref, dtype)
    _check(gw, gw_ref, dtype)
    _check(gb, gy.astype(float).sum(axis=(0, 1, 2)), dtype)


POOL_CASES = [
    # (n, h, w, c, kh, kw, sh, sw, pt, pb, pl, pr)
    (2, 6, 6, 3, 2, 2, 2, 2, 0, 0, 0, 0),
    (1, 7, 5, 4, 3, 3, 2, 2, 1, 1, 1, 1),   # overlapping windows, padding
    (2, 5, 8, 2, 3, 2, 1, 3, 2, 0, 0, 1),
    (1, 4, 4, 5, 4, 4, 1, 1, 3, 0, 0, 3),   # windows mostly padding
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool(K, mode, case, dtype):
    n, h, w, c, kh, kw, sh, sw, pt, pb, pl, pr = case
    oh, ow = _out(h, kh, sh, pt, pb, 1), _out(w, kw, sw, pl, pr, 1)
    rng = np.random.default_rng(3)
    # Few distinct values: ties everywhere; max also gets NaNs.
    x = rng.integers(-2, 3, (n, h, w, c)).astype(dtype)
    if mode == "max":
        x[rng.random(x.shape) < 0.1] = np.nan
    gy = _rand(rng, (n, oh, ow, c), dtype)
    y_ref, gx_ref = ref_pool(mode, x.astype(float), gy.astype(float), kh, kw, sh, sw, pt, pl)
    geo = (kh, kw, sh, sw, pt, pl)
    y, gx = cupy.full(gy.shape, 7.0, dtype), cupy.full(x.shape, 7.0, dtype)
    if mode == "max":
        K.pool.max_forward(_dev(x), y, *geo)
        K.pool.max_backward(_dev(x), _dev(gy), gx, *geo)
    else:
        K.pool.avg_forward(_dev(x), y, *geo)
        K.pool.avg_backward(_dev(gy), gx, *geo)
    _check(y, y_ref, dtype)
    _check(gx, gx_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_bias_act(K, bias, relu, dtype):
    rng = np.random.default_rng(4)
    y0, b = _rand(rng, (2, 3, 5, 7), dtype), _rand(rng, (7,), dtype)
    y0[0, 0, 0, :2] = np.nan
    expected = y0.astype(float) + (b if bias else 0)
    expected = np.maximum(expected, 0) if relu else expected
    y = _dev(y0)
    K.epilogue.bias_act(y, _dev(b) if bias else None, relu)
    _check(y, expected, dtype)


F32 = np.float32
BAD_CALLS = {  # x[1, 5, 5, 4] (float32), w[3, 3, 4, 8], y[1, 3, 3, 8]; stride 1, no padding
    "out-channels": lambda K, x, w, y: K.conv_direct.forward(x, w, cupy.zeros((1, 3, 3, 7), F32),
                                                             1, 1, 0, 0, 1, 1, 1),
    "out-height": lambda K, x, w, y: K.conv_direct.forward(x, w, cupy.zeros((1, 2, 3, 8), F32),
                                                           1, 1, 0, 0, 1, 1, 1),
    "batch": lambda K, x, w, y: K.conv_direct.backward_weight(cupy.zeros((2, 3, 3, 8), F32), x, w,
                                                              1, 1, 0, 0, 1, 1, 1),
    "groups": lambda K, x, w, y: K.conv_direct.forward(x, w, y, 1, 1, 0, 0, 1, 1, 2),
    "dtype": lambda K, x, w, y: K.conv_direct.forward(x, w.astype(np.float64), y,
                                                      1, 1, 0, 0, 1, 1, 1),
    "numpy": lambda K, x, w, y: K.conv_direct.forward(cupy.asnumpy(x), w, y, 1, 1, 0, 0, 1, 1, 1),
    "strided": lambda K, x, w, y: K.conv_direct.backward_input(y, w, x[:, ::-1],
                                                               1, 1, 0, 0, 1, 1, 1),
    "stride-0": lambda K, x, w, y: K.conv_direct.forward(x, w, y, 0, 1, 0, 0, 1, 1, 1),
    "padding<0": lambda K, x, w, y: K.conv_direct.forward(x, w, y, 1, 1, -1, 0, 1, 1, 1),
    "tile-past-end": lambda K, x, w, y: K.im2col.im2col(x, cupy.zeros((1, 9, 36), F32), 1,
                                                        3, 3, 3, 3, 1, 1, 0, 0, 1, 1),
    "tile-groups": lambda K, x, w, y: K.im2col.col2im(cupy.zeros((2, 9, 36), F32), x, 0,
                                                      3, 3, 3, 3, 1, 1, 0, 0, 1, 1),
    "depthwise": lambda K, x, w, y: K.depthwise.forward(x, cupy.zeros((3, 3, 1, 6), F32),
                                                        cupy.zeros((1, 3, 3, 6), F32),
                                                        1, 1, 0, 0, 1, 1),
    "pool-all-padding": lambda K, x, w, y: K.pool.max_forward(x, cupy.zeros((1, 3, 2, 4), F32),
                                                              2, 2, 2, 2, 2, 0),
    "pool-channels": lambda K, x, w, y: K.pool.avg_backward(cupy.zeros((1, 2, 2, 3), F32), x,
                                                            2, 2, 2, 2, 0, 0),
    "bias": lambda K, x, w, y: K.epilogue.bias_act(y, cupy.zeros((7,), F32), True),
    "dropout-shape": lambda K, x, w, y: K.epilogue.dropout(x, y, 1, 0, 1.0),
    "dropout-threshold": lambda K, x, w, y: K.epilogue.dropout(y, cupy.zeros_like(y), 1,
                                                               2**32 + 1, 1.0),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_disagreements_raise_valueerror(K, call):
    x, w, y = (cupy.zeros(s, F32) for s in ((1, 5, 5, 4), (3, 3, 4, 8), (1, 3, 3, 8)))
    with pytest.raises(ValueError):
        call(K, x, w, y)


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "1x1", "depthwise"])
def test_backend_algorithms(K, algorithm):
    """BACKEND (NativeBackend over these kernels and CuPy's matmul) end to end, float64."""
    from fastconv._shapes import make_geometry
    from fastconv.backends.cupy import BACKEND
    rng = np.random.default_rng(5)
    c, o = 4, 8
    k, groups = {"1x1": (1, 2), "depthwise": (3, 4)}.get(algorithm, (3, 2))
    g = make_geometry((2, 6, 5, c), k, o, groups, 1, "valid" if algorithm == "1x1" else "same", 1)
    x, w, gy = (rng.standard_normal(s) for s in (g.input_shape, (k, k, c // groups, o),
                                                 g.output_shape))
    y = BACKEND.conv2d(_dev(x), _dev(w), g, algorithm)
    gx, gw, gb = BACKEND.conv2d_backward(_dev(gy), _dev(x), _dev(w), g, algorithm)
    _check(gb, gy.sum(axis=(0, 1, 2)), np.float64)
    args = (g.sh, g.sw, g.pt, g.pl, g.dil_h, g.dil_w, groups)
    _check(y, ref_conv(x, w, g.oh, g.ow, *args), np.float64)
    gx_ref, gw_ref = ref_conv_grads(x, w, gy, *args)
    _check(gx, gx_ref, np.float64)
    _check(gw, gw_ref, np.float64)
