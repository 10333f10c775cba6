"""The CPU depthwise kernels on channel counts past their vectors (8 float32 / 4 float64
channels, plus a tail) and rows past their strips (8, 4 and 1 pixels), against the float64
reference, on 1 and 2 threads."""
import numpy as np
import pytest

import fastconv
from fastconv import backends
from fastconv._shapes import make_geometry
from fastconv.kernels._taps import runs, taps
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
    x = random_array(rng, (3, 11, 23, c), dtype)
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
    """An output whose every tap reads padding is zero, whatever the output held before; the
    bias gradient still sums such pixels of gy."""
    k = backends.get(backend).k
    x = np.ones((1, 1, 1, 40), np.float32)
    w = np.ones((1, 1, 1, 40), np.float32)
    y = np.full((1, 3, 3, 40), np.nan, np.float32)
    k.depthwise.forward(x, w, y, 1, 1, 1, 1, 1, 1)     # only y[0, 1, 1] reads x
    expected = np.zeros_like(y)
    expected[0, 1, 1] = 1
    np.testing.assert_array_equal(y, expected)
    gx, gb = np.full((1, 5, 5, 40), np.nan, np.float32), np.full(40, np.nan, np.float32)
    k.depthwise.backward(np.ones((1, 2, 2, 40), np.float32), np.ones((1, 5, 5, 40), np.float32),
                         w, gx, np.empty_like(w), 3, 3, 1, 1, 1, 1, gb=gb)
    expected = np.zeros_like(gx)
    expected[0, 2, 2] = 1                               # read by gy[0, 1, 1] only
    np.testing.assert_array_equal(gx, expected)
    np.testing.assert_array_equal(gb, 4)                # every gy pixel, padding-only ones too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"])
def test_depthwise_forward_adds_the_bias(backend, case, dtype):
    """``forward(..., b)`` is the convolution plus b, whatever y held before."""
    c, m, kh, kw, strides, padding, dilation = case
    rng = np.random.default_rng(c + m)
    x = random_array(rng, (2, 7, 21, c), dtype)
    w = random_array(rng, (kh, kw, 1, c * m), dtype)
    b = random_array(rng, (c * m,), dtype)
    args = dict(strides=strides, padding=padding, dilation=dilation, groups=c)
    y_ref = reference("conv2d", x, w, **args) + b
    g = make_geometry(x.shape, (kh, kw), c * m, c, strides, padding, dilation)
    y = np.full(g.output_shape, np.nan, dtype)
    backends.get(backend).k.depthwise.forward(x, w, y, *g.stride_args(), b)
    assert_close(y, y_ref, dtype, kh * kw)


@pytest.mark.parametrize("backend", [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"])
def test_depthwise_forward_rejects_a_bad_bias(backend):
    k = backends.get(backend).k.depthwise
    x = np.ones((1, 4, 4, 8), np.float32)
    w = np.ones((3, 3, 1, 8), np.float32)
    y = np.empty((1, 4, 4, 8), np.float32)
    for b in (np.ones(7, np.float32), np.ones(8, np.float64), np.ones((1, 8), np.float32),
              np.ones(16, np.float32)[::2], [1.0] * 8):
        with pytest.raises(ValueError):
            k.forward(x, w, y, 1, 1, 1, 1, 1, 1, b)
    with pytest.raises(ValueError):  # the output may not overlap the bias
        k.forward(x, w, y, 1, 1, 1, 1, 1, 1, y.reshape(-1)[:8])


@pytest.mark.parametrize("geometry", [(9, 3, 1, 1, 1, 9), (10, 3, 2, 0, 1, 20),
                                      (20, 3, 2, 1, 1, 10), (7, 5, 3, 2, 2, 4),
                                      (12, 4, 2, 3, 3, 6), (5, 1, 1, 0, 1, 5)])
@pytest.mark.parametrize("adjoint", [False, True])
def test_tap_runs_list_exactly_the_tap_table(geometry, adjoint):
    """Every index is in one run, and a run's cells and taps are the table's, in increasing
    cell."""
    n, k, s, p, d, n_cells = geometry
    if adjoint:  # the adjoint's n is an input size, its cells output indices
        n, n_cells = n_cells, n
    tab, cnt = taps(n, k, s, p, d, n_cells, adjoint)
    seen = {}
    for q0, qs, nq, cell0, cs, tap0, js, ts, nt in runs(n, k, s, p, d, n_cells, adjoint):
        for i in range(nq):
            seen[q0 + i * qs] = [(cell0 + i * cs + t * ts, tap0 + t * js) for t in range(nt)]
    assert sorted(seen) == list(range(n))
    for o in range(n):
        assert seen[o] == sorted(tuple(e) for e in tab[o, :cnt[o]])


@pytest.mark.parametrize("backend", [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"])
def test_depthwise_kernels_with_a_very_tall_filter(backend):
    """2**19 real row taps per output row: the Cython M == 1 kernel kept three pointers per row
    tap on the stack (12 MiB here: a segfault); such filters now take the plain loops."""
    k = backends.get(backend).k.depthwise
    kh = 2**19
    x = np.ones((1, kh, 1, 8), np.float32)
    w = np.ones((kh, 1, 1, 8), np.float32)
    b = np.arange(8, dtype=np.float32)
    y = np.full((1, 1, 1, 8), np.nan, np.float32)
    k.forward(x, w, y, 1, 1, 0, 0, 1, 1, b)
    np.testing.assert_array_equal(y[0, 0, 0], kh + b)
    gw = np.full(w.shape, np.nan, np.float32)
    k.backward(np.ones_like(y), x, w, None, gw, 1, 1, 0, 0, 1, 1)
    np.testing.assert_array_equal(gw, 1)
    kh = 65                                          # past the limit of 64 (the gy rows' tap
    w = np.ones((kh, 1, 1, 8), np.float32)           # table has kh x kh entries)
    gx = np.full((1, 1, 1, 8), np.nan, np.float32)   # every one of kh output rows reads x
    k.backward(np.ones((1, kh, 1, 8), np.float32), gx.copy(), w, gx, np.empty_like(w),
               1, 1, kh - 1, 0, 1, 1)
    np.testing.assert_array_equal(gx, kh)


KERNEL_BACKENDS = [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"]


def _random_case(rng):
    """A random depthwise geometry the kernels accept: strides, padding, dilation, M."""
    c, m = int(rng.integers(1, 40)), int(rng.choice([1, 1, 1, 2, 3]))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw, dh, dw = (int(v) for v in rng.integers(1, 4, 4))
    h = int(rng.integers((kh - 1) * dh + 1, 14))
    wd = int(rng.integers((kw - 1) * dw + 1, 14))
    pads = tuple(tuple(int(v) for v in rng.integers(0, k, 2)) for k in (kh, kw))
    args = dict(strides=(sh, sw), padding=pads, dilation=(dh, dw), groups=c)
    return (int(rng.integers(1, 4)), h, wd, c), (kh, kw, 1, c * m), args


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_depthwise_kernels_on_random_geometries(backend, dtype, stream, monkeypatch):
    """forward and backward (gx and gw, or gw alone) against the float64 reference; ``stream``
    sends every output through the Cython kernels' row buffers and non-temporal stores."""
    k = backends.get(backend).k.depthwise
    if stream:
        if not hasattr(k, "_NT"):
            pytest.skip("no streamed stores in this backend")
        monkeypatch.setattr(k, "_NT", 1)
    rng = np.random.default_rng(11 + stream)
    for _ in range(12):
        xs, ws, args = _random_case(rng)
        x, w = random_array(rng, xs, dtype), random_array(rng, ws, dtype)
        b = random_array(rng, (ws[3],), dtype)
        g = make_geometry(xs, ws[:2], ws[3], xs[3], args["strides"], args["padding"],
                          args["dilation"])
        y_ref = reference("conv2d", x, w, **args)
        gy = random_array(rng, y_ref.shape, dtype)
        g_ref = reference("conv2d_backward", gy, x, w, **args)
        y = np.full(g.output_shape, np.nan, dtype)
        k.forward(x, w, y, *g.stride_args(), b)
        assert_close(y, y_ref + b, dtype, ws[0] * ws[1])
        gx, gw = np.full(xs, np.nan, dtype), np.full(ws, np.nan, dtype)
        gb = np.full(ws[3], np.nan, dtype)
        k.backward(gy, x, w, gx, gw, *g.stride_args(), gb=gb)
        assert_close(gx, g_ref.dx, dtype, ws[0] * ws[1] * ws[3] // xs[3])
        assert_close(gw, g_ref.dw, dtype, y_ref[..., 0].size)
        assert_close(gb, gy.astype(np.float64).sum(axis=(0, 1, 2)), dtype, y_ref[..., 0].size)
        gw2 = np.full(ws, np.nan, dtype)
        k.backward(gy, x, w, None, gw2, *g.stride_args())
        np.testing.assert_array_equal(gw2, gw)


PAIR_CASES = [  # kh, stride, padding (rows), dilation, h: rows paired (stride == dilation),
    (3, 1, (1, 1), 1, 12),   # the weight gradients of two output rows at a time, edges single
    (3, 2, (2, 1), 2, 15),
    (2, 1, (0, 1), 1, 7),
    (1, 1, (0, 0), 1, 5),    # one row tap
    (3, 1, (0, 0), 2, 11),   # stride != dilation: never paired
    (3, 1, (1, 1), 1, 9),    # odd: the last task of each image is one row
    (5, 1, (2, 2), 1, 9),    # taller than a tile: never paired
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PAIR_CASES)
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_depthwise_weight_gradient_of_row_pairs(backend, case, dtype, threads):
    """gw and gb (with and without gx) against the float64 reference where the rows' weight
    gradients run in pairs, across images, channel tails and odd row counts."""
    kh, s, pad, d, h = case
    k = backends.get(backend).k.depthwise
    rng = np.random.default_rng(kh * 31 + h)
    xs, ws = (3, h, 11, 21), (kh, 3, 1, 21)
    args = dict(strides=(s, 1), padding=(pad, (1, 1)), dilation=(d, 1), groups=21)
    x, w = random_array(rng, xs, dtype), random_array(rng, ws, dtype)
    g = make_geometry(xs, ws[:2], ws[3], xs[3], args["strides"], args["padding"],
                      args["dilation"])
    gy = random_array(rng, g.output_shape, dtype)
    g_ref = reference("conv2d_backward", gy, x, w, **args)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        gx, gw = np.full(xs, np.nan, dtype), np.full(ws, np.nan, dtype)
        gb = np.full(21, np.nan, dtype)
        k.backward(gy, x, w, gx, gw, *g.stride_args(), gb=gb)
        gw2 = np.full(ws, np.nan, dtype)
        k.backward(gy, x, w, None, gw2, *g.stride_args())
    finally:
        fastconv.set_num_threads(old)
    terms = gy[..., 0].size
    assert_close(gx, g_ref.dx, dtype, kh * 3)
    assert_close(gw, g_ref.dw, dtype, terms)
    assert_close(gb, gy.astype(np.float64).sum(axis=(0, 1, 2)), dtype, terms)
    np.testing.assert_array_equal(gw2, gw)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PAIR_CASES)
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_depthwise_forward_on_row_geometries(backend, case, dtype, threads, stream, monkeypatch):
    """The forward (with its bias, over NaNs) against the float64 reference on the row
    geometries of the pairs above, several images (the next row's prefetch crosses into the
    next image, or stops at the last row), sliding strips (which prefetch) and column strides
    and wide filters (which do not; several column tiles), channel tails, through the row
    buffers or not."""
    kh, s, pad, d, h = case
    k = backends.get(backend).k.depthwise
    if stream:
        if not hasattr(k, "_NT"):
            pytest.skip("no streamed stores in this backend")
        monkeypatch.setattr(k, "_NT", 1)
    rng = np.random.default_rng(kh * 17 + h)
    for kw, sw, wd in ((3, 1, 11), (5, 2, 13), (1, 1, 6)):
        xs, ws = (3, h, wd, 21), (kh, kw, 1, 21)
        args = dict(strides=(s, sw), padding=(pad, (kw // 2, kw // 2)), dilation=(d, 1),
                    groups=21)
        x, w = random_array(rng, xs, dtype), random_array(rng, ws, dtype)
        b = random_array(rng, (21,), dtype)
        g = make_geometry(xs, ws[:2], ws[3], xs[3], args["strides"], args["padding"],
                          args["dilation"])
        y = np.full(g.output_shape, np.nan, dtype)
        old = fastconv.get_num_threads()
        fastconv.set_num_threads(threads)
        try:
            k.forward(x, w, y, *g.stride_args(), b)
        finally:
            fastconv.set_num_threads(old)
        assert_close(y, reference("conv2d", x, w, **args) + b, dtype, kh * kw)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_depthwise_backward_is_deterministic(backend):
    """The per-thread weight gradients are summed in a fixed order: the same bits every call."""
    k = backends.get(backend).k.depthwise
    rng = np.random.default_rng(5)
    x = random_array(rng, (4, 9, 9, 24), np.float32)
    w = random_array(rng, (3, 3, 1, 24), np.float32)
    gy = random_array(rng, (4, 9, 9, 24), np.float32)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        outs = []
        for _ in range(4):
            gx, gw = np.empty_like(x), np.empty_like(w)
            k.backward(gy, x, w, gx, gw, 1, 1, 1, 1, 1, 1)
            outs.append((gx, gw))
    finally:
        fastconv.set_num_threads(old)
    for gx, gw in outs[1:]:
        np.testing.assert_array_equal(gx, outs[0][0])
        np.testing.assert_array_equal(gw, outs[0][1])


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_depthwise_backward_rejects_bad_arguments(backend):
    k = backends.get(backend).k.depthwise
    x = np.ones((2, 5, 5, 8), np.float32)
    w = np.ones((3, 3, 1, 8), np.float32)
    gy = np.ones((2, 5, 5, 8), np.float32)
    ok = dict(gy=gy, x=x, w=w, gx=np.empty_like(x), gw=np.empty_like(w), gb=None)
    bad = [dict(gw=np.empty((3, 3, 1, 16), np.float32)),        # gw not w's shape
           dict(gw=np.empty((3, 2, 1, 8), np.float32)),
           dict(gx=np.empty((2, 5, 4, 8), np.float32)),         # gx not x's shape
           dict(gx=np.empty((2, 5, 5, 8), np.float64)),
           dict(gy=np.ones((2, 2, 5, 8), np.float32)),          # gy not the output's shape
           dict(gy=np.ones((2, 5, 5, 16), np.float32)),
           dict(x=np.ones((1, 5, 5, 8), np.float32)),
           dict(gx=gy),                                        # outputs may not overlap inputs
           dict(gw=w),
           dict(gx=np.empty((2, 5, 5, 16), np.float32)[..., ::2]),
           dict(gb=np.empty(7, np.float32)),                   # gb not one per channel
           dict(gb=np.empty(8, np.float64)),
           dict(gb=gy.reshape(-1)[:8])]
    for change in bad:
        a = {**ok, **change}
        with pytest.raises(ValueError):
            k.backward(a["gy"], a["x"], a["w"], a["gx"], a["gw"], 1, 1, 1, 1, 1, 1, gb=a["gb"])
    k.backward(gy, x, w, ok["gx"], ok["gw"], 1, 1, 1, 1, 1, 1)   # the good call passes
    np.testing.assert_array_equal(ok["gw"][1, 1, 0], 50)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_depthwise_same_3_wide_rows(backend, dtype, stream, monkeypatch):
    """Rows of a "same" 3-wide filter, stride 1 (the Cython kernels walk such a whole row per
    channel vector): 1 to 3 row taps, the shortest rows (3 pixels; 2 take the other path),
    channel tails; the forward pass with a bias and the input gradient."""
    k = backends.get(backend).k.depthwise
    if stream:
        if not hasattr(k, "_NT"):
            pytest.skip("no streamed stores in this backend")
        monkeypatch.setattr(k, "_NT", 1)
    rng = np.random.default_rng(5)
    for n, h, wd, c, kh, pad_h in [(2, 1, 3, 21, 3, (1, 1)), (1, 5, 19, 13, 3, (1, 1)),
                                   (2, 4, 2, 9, 3, (1, 1)), (1, 3, 4, 17, 1, (0, 0)),
                                   (2, 6, 5, 8, 2, (1, 0)), (1, 7, 6, 3, 3, (2, 0))]:
        x, w = random_array(rng, (n, h, wd, c), dtype), random_array(rng, (kh, 3, 1, c), dtype)
        b = random_array(rng, (c,), dtype)
        args = dict(strides=(1, 1), padding=(pad_h, (1, 1)), dilation=(1, 1), groups=c)
        g = make_geometry(x.shape, (kh, 3), c, c, args["strides"], args["padding"],
                          args["dilation"])
        y_ref = reference("conv2d", x, w, **args)
        gy = random_array(rng, y_ref.shape, dtype)
        y = np.full(g.output_shape, np.nan, dtype)
        k.forward(x, w, y, *g.stride_args(), b)
        assert_close(y, y_ref + b, dtype, kh * 3)
        gx, gw = np.full(x.shape, np.nan, dtype), np.full(w.shape, np.nan, dtype)
        k.backward(gy, x, w, gx, gw, *g.stride_args())
        assert_close(gx, reference("conv2d_backward", gy, x, w, **args).dx, dtype, kh * 3)
