"""The CPU direct-convolution kernels on every path they pick (thin inputs, groups of 4 channels
(rotated lanes; with an odd number of groups float32 runs expanded), few output channels per
group (expanded rows), few input channels per group, wide groups), with strides, padding,
dilation and odd sizes, against a float64 NumPy reference, on 1 and 2 threads."""
import numpy as np
import pytest

import fastconv
from fastconv import backends
from fastconv.kernels import _adjoint
from conftest import CPU_BACKEND_PARAMS

BACKENDS = [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"]

CASES = [  # n, h, w, groups, cg, og, kh, kw, (sh, sw), (pt, pl), (dil_h, dil_w), extra (oh, ow)
    (3, 12, 11, 1, 1, 32, 3, 3, (1, 1), (0, 0), (1, 1), (0, 0)),      # mnist1-like
    (2, 10, 13, 1, 3, 64, 3, 3, (1, 1), (0, 0), (1, 1), (0, 0)),      # cifar1-like
    (2, 9, 10, 10, 4, 4, 3, 3, (1, 1), (1, 1), (1, 1), (0, 0)),       # resnext-like, rotated lanes
    (2, 8, 9, 3, 4, 4, 2, 3, (1, 2), (2, 1), (2, 1), (0, 1)),         # groups of 4, odd count
    (2, 9, 8, 2, 3, 40, 3, 2, (2, 1), (1, 0), (1, 2), (1, 0)),        # wide groups, tail channels
    (2, 8, 9, 3, 2, 5, 2, 3, (1, 2), (2, 1), (2, 1), (0, 1)),         # expanded, odd sizes
    (1, 7, 9, 1, 17, 8, 3, 3, (2, 2), (1, 2), (1, 1), (1, 1)),        # many input channels
    (2, 6, 7, 2, 20, 20, 2, 2, (1, 1), (1, 1), (2, 2), (0, 0)),       # dense groups
    (1, 5, 6, 4, 1, 9, 1, 3, (3, 1), (0, 2), (1, 3), (1, 2)),         # padding-only cells
    (2, 11, 30, 1, 3, 64, 3, 3, (1, 1), (1, 1), (1, 1), (0, 0)),      # bands of several rows
    (1, 13, 41, 2, 5, 20, 3, 2, (2, 1), (2, 1), (1, 2), (0, 0)),      # GEMM tails, strided
]


def _case_arrays(case, rng):
    """A case's x and w (float64, uniform in [-1, 1]), its output shape and the kernels'
    integer arguments."""
    n, h, wd, groups, cg, og, kh, kw, (sh, sw), (pt, pl), (dh, dw), (eh, ew) = case
    x = rng.uniform(-1, 1, (n, h, wd, groups * cg))
    w = rng.uniform(-1, 1, (kh, kw, cg, groups * og))
    oh = (h + pt - (kh - 1) * dh - 1) // sh + 1 + eh
    ow = (wd + pl - (kw - 1) * dw - 1) // sw + 1 + ew
    return x, w, (n, oh, ow, groups * og), (sh, sw, pt, pl, dh, dw, groups)


def _reference(x, w, gy_shape, rng, sh, sw, pt, pl, dh, dw, groups):
    """y, and gx, gw for a random gy, in float64 by slices of a zero-padded input."""
    n, h, wd, c = x.shape
    kh, kw, cg, o = w.shape
    og = o // groups
    oh, ow = gy_shape[1], gy_shape[2]
    gy = rng.uniform(-1, 1, gy_shape)
    xp = np.zeros((n, pt + (oh - 1) * sh + (kh - 1) * dh + 1 + h, pl + (ow - 1) * sw
                   + (kw - 1) * dw + 1 + wd, c))
    xp[:, pt:pt + h, pl:pl + wd] = x
    gxp = np.zeros_like(xp)
    y = np.zeros(gy_shape)
    gw = np.zeros(w.shape)
    for i in range(kh):
        for j in range(kw):
            win = (slice(None), slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
                   slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))
            for g in range(groups):
                ci, co = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
                y[..., co] += xp[win][..., ci] @ w[i, j, :, co]
                gw[i, j, :, co] = np.einsum("nhwc,nhwo->co", xp[win][..., ci], gy[..., co])
                gxp[win + (ci,)] += gy[..., co] @ w[i, j, :, co].T
    return y, gy, gxp[:, pt:pt + h, pl:pl + wd], gw


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_kernels_match_reference(backend, case, dtype, threads):
    k = backends.get(backend).k.conv_direct
    rng = np.random.default_rng(sum(case[:8]))
    x, w, y_shape, args = _case_arrays(case, rng)
    (n, oh, ow, _), (cg, og, kh, kw) = y_shape, case[4:8]
    y_ref, gy, gx_ref, gw_ref = _reference(x, w, y_shape, rng, *args)
    gb_ref = gy.sum(axis=(0, 1, 2))
    x, w, gy = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        outs = []
        for _ in range(2):
            y = np.full(y_ref.shape, np.nan, dtype)   # outputs are overwritten, NaN included
            gx = np.full(x.shape, np.nan, dtype)
            gw, gb = np.full(w.shape, np.nan, dtype), np.full(gy.shape[3], np.nan, dtype)
            k.forward(x, w, y, *args)
            k.backward_input(gy, w, gx, *args)
            k.backward_weight(gy, x, gw, *args, gb=gb)
            outs.append((y, gx, gw, gb))
    finally:
        fastconv.set_num_threads(old)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    for got, ref, terms in zip(outs[0], (y_ref, gx_ref, gw_ref, gb_ref),
                               (kh * kw * cg, kh * kw * og, n * oh * ow, n * oh * ow)):
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.sqrt(terms))
    for a, b in zip(*outs):   # deterministic: the same bits on every call
        np.testing.assert_array_equal(a, b)


def _random_case(rng):
    """A random geometry that mostly takes the GEMM weight gradient and the blocked input
    gradient (few input channels, many output channels), with bands of a few rows per image."""
    groups = int(rng.choice([1, 1, 2]))
    cg, og = int(rng.integers(1, 6)), int(rng.integers(16, 90))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw, dh, dw = (int(v) for v in rng.choice([1, 1, 2], 4))
    pt, pl = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    h, wd = int(rng.integers(kh * dh + 2, 24)), int(rng.integers(kw * dw + 2, 60))
    return (int(rng.integers(1, 4)), h, wd, groups, cg, og, kh, kw, (sh, sw), (pt, pl),
            (dh, dw), (0, int(rng.integers(0, 2))))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_backward_random_shapes(backend, dtype, seed):
    rng = np.random.default_rng(seed)
    case = _random_case(rng)
    k = backends.get(backend).k.conv_direct
    x, w, y_shape, args = _case_arrays(case, rng)
    (n, oh, ow, _), (og, kh, kw) = y_shape, case[5:8]
    _, gy, gx_ref, gw_ref = _reference(x, w, y_shape, rng, *args)
    x, w, gy = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
    gx, gw = np.full(x.shape, np.nan, dtype), np.full(w.shape, np.nan, dtype)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        k.backward_input(gy, w, gx, *args)
        k.backward_weight(gy, x, gw, *args)
    finally:
        fastconv.set_num_threads(old)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(gx, gx_ref, rtol=tol, atol=tol * np.sqrt(kh * kw * og),
                               err_msg=str(case))
    np.testing.assert_allclose(gw, gw_ref, rtol=tol, atol=tol * np.sqrt(n * oh * ow),
                               err_msg=str(case))


LANES_CASES = [  # one group, unit column stride and dilation, few input channels: gx computed
    # with its pixels in lanes from transposed rows of gy
    (2, 7, 37, 1, 5, 19, 3, 4, (2, 1), (1, 5), (2, 1), (0, 3)),   # pl > kw, tails, extra columns
    (1, 6, 8, 1, 2, 8, 2, 2, (1, 1), (0, 3), (1, 1), (1, 6)),     # gy columns past the lanes
    (3, 5, 3, 1, 1, 12, 3, 1, (1, 1), (2, 0), (1, 1), (0, 0)),    # fewer columns than lanes
    (1, 9, 70, 1, 4, 33, 3, 3, (1, 1), (1, 1), (1, 1), (0, 0)),   # several column blocks
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LANES_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_input_gradient_in_lanes(backend, case, dtype, threads):
    k = backends.get(backend).k.conv_direct
    rng = np.random.default_rng(sum(case[:8]))
    x, w, y_shape, args = _case_arrays(case, rng)
    _, gy, gx_ref, _ = _reference(x, w, y_shape, rng, *args)
    w, gy = w.astype(dtype), gy.astype(dtype)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        outs = [np.full(x.shape, np.nan, dtype) for _ in range(2)]
        for gx in outs:
            k.backward_input(gy, w, gx, *args)
    finally:
        fastconv.set_num_threads(old)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(outs[0], gx_ref, rtol=tol,
                               atol=tol * np.sqrt(np.prod(case[5:8])), err_msg=str(case))
    np.testing.assert_array_equal(outs[0], outs[1])   # the same bits on every call


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_kernels_reject_bad_shapes(backend):
    k = backends.get(backend).k.conv_direct
    x = np.zeros((1, 5, 5, 4), np.float32)
    w = np.zeros((3, 3, 1, 8), np.float32)
    with pytest.raises(ValueError):
        k.forward(x, w, np.zeros((1, 3, 3, 8), np.float32), 1, 1, 0, 0, 1, 1, 2)  # 4 != 2*1
    with pytest.raises(ValueError):
        k.backward_weight(np.zeros((1, 3, 3, 8), np.float32), x, w, 1, 1, 0, 0, 1, 1, 3)
    gy, gw = np.zeros((1, 3, 3, 3), np.float32), np.zeros((3, 3, 4, 3), np.float32)
    for gb in (np.zeros(4, np.float32), np.zeros(3), np.zeros((1, 3), np.float32), [0.0] * 3):
        with pytest.raises(ValueError, match="gb"):
            k.backward_weight(gy, x, gw, 1, 1, 0, 0, 1, 1, 1, gb=gb)
    with pytest.raises(ValueError):
        k.backward_input(np.zeros((1, 2, 3, 8), np.float32), w, np.zeros_like(x), 1, 1, 0, 0,
                         1, 1, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_kernels_with_no_output_channels(backend):
    """O = 0: nothing reaches x, so gx is zero (the Numba input gradient of few input channels
    used to read past its empty per-pixel accumulator)."""
    k = backends.get(backend).k.conv_direct
    for cg, groups in ((3, 1), (2, 2), (20, 1)):
        x = np.ones((2, 4, 5, cg * groups), np.float32)
        w = np.ones((3, 3, cg, 0), np.float32)
        gy = np.ones((2, 4, 5, 0), np.float32)
        gx = np.full(x.shape, np.nan, np.float32)
        k.backward_input(gy, w, gx, 1, 1, 1, 1, 1, 1, groups)
        np.testing.assert_array_equal(gx, 0)
        y = np.empty((2, 4, 5, 0), np.float32)
        k.forward(x, w, y, 1, 1, 1, 1, 1, 1, groups)
        gw = np.empty(w.shape, np.float32)
        k.backward_weight(gy, x, gw, 1, 1, 1, 1, 1, 1, groups)


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_kernels_huge_dilation_on_a_small_image(backend):
    """A row dilation far past the image: right results, and the expanded-row cache (few output
    channels per group) holds at most the image's rows, not one per row of the dilated span."""
    k = backends.get(backend).k.conv_direct
    rng = np.random.default_rng(5)
    dh, args = 10**4, (1, 1, 0, 1, 10**4, 1, 2)
    x = rng.uniform(-1, 1, (2, 4, 5, 4))
    w = rng.uniform(-1, 1, (2, 3, 2, 6))        # Og = 3: expanded
    y_ref, gy, gx_ref, gw_ref = _reference(x, w, (2, 4, 5, 6), rng, *args)
    y, gx, gw = (np.full(a.shape, np.nan) for a in (y_ref, x, w))
    k.forward(x, w, y, *args)
    k.backward_input(gy, w, gx, *args)
    k.backward_weight(gy, x, gw, *args)
    for got, ref in ((y, y_ref), (gx, gx_ref), (gw, gw_ref)):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)
    if backend == "cython":
        xe, tags = k._row_cache(2, 2, dh, 4, 5, 2, 6, True, np.float64)
        assert tags.shape == (2, 4) and xe.shape == (2, 4 * 2 * 5, 6)
    else:
        assert k._slots(2, dh, 4) == 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_forward_adds_the_bias_then_relu(backend, case, dtype):
    """``forward(..., b, relu=True)`` is max(conv + b, 0) whatever y held; NaN stays NaN."""
    k = backends.get(backend).k.conv_direct
    rng = np.random.default_rng(sum(case[:8]) + 1)
    x, w, y_shape, args = _case_arrays(case, rng)
    x[0, 0, x.shape[2] // 2, 0] = np.nan
    b = rng.uniform(-1, 1, y_shape[3])
    expected = np.maximum(_reference(x, w, y_shape, rng, *args)[0] + b, 0)
    y = np.full(y_shape, np.nan, dtype)
    k.forward(x.astype(dtype), w.astype(dtype), y, *args, b=b.astype(dtype), relu=True)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    terms = np.prod(case[4:8])
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol * np.sqrt(terms))
    assert np.isnan(expected).any() and (expected == 0).any() and (expected > 0).any()
    with pytest.raises(ValueError, match="b has shape"):
        k.forward(x.astype(dtype), w.astype(dtype), y, *args, b=b[1:].astype(dtype))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_forward_streamed_rows_are_the_same_bits(backend, case, monkeypatch):
    """Outputs of ``_NT`` bytes or more go through per-thread row buffers and non-temporal
    stores (Cython): the same bits as rows written in place, on every task path."""
    k = backends.get(backend).k.conv_direct
    if not hasattr(k, "_NT"):
        pytest.skip(f"no streamed stores in the {backend} backend")
    x, w, y_shape, args = _case_arrays(case, np.random.default_rng(3))
    x, w = x.astype(np.float32), w.astype(np.float32)
    outs = []
    for nt in (1 << 62, 1):
        monkeypatch.setattr(k, "_NT", nt)
        y = np.full(y_shape, np.nan, np.float32)
        k.forward(x, w, y, *args)
        outs.append(y)
    np.testing.assert_array_equal(outs[1], outs[0])
    assert not np.isnan(outs[1]).any()


def _at_offset(a, k):
    """A copy of ``a`` starting ``k`` items past a 64-byte boundary."""
    buf = np.empty(a.size + 64 // a.itemsize + k, a.dtype)
    s = (-buf.ctypes.data % 64) // a.itemsize + k
    out = buf[s:s + a.size].reshape(a.shape)
    out[...] = a
    return out


GEMM_CASES = [  # the weight gradient's GEMM from gy in place (aligned) or from a copy
    (2, 10, 13, 1, 3, 64, 3, 3, (1, 1), (0, 0), (1, 1), (0, 0)),      # cifar1-like: bias copied
    (3, 12, 11, 1, 1, 32, 3, 3, (1, 1), (0, 0), (1, 1), (0, 0)),      # mnist1-like
    (2, 11, 30, 1, 3, 64, 3, 3, (1, 1), (1, 1), (1, 1), (0, 0)),      # padded: bias from gy
    (1, 13, 41, 2, 5, 20, 3, 2, (2, 1), (2, 1), (1, 2), (0, 0)),      # groups of 20: copied
    (2, 9, 17, 2, 3, 24, 2, 3, (1, 2), (0, 0), (2, 1), (0, 0)),       # groups of whole vectors
]


def _vector_width(monkeypatch, k, isa):
    """Runs the weight gradient's GEMM of ``isa``: 'avx2' (32-byte vectors) everywhere, 'avx512'
    (64-byte) where the CPU has it; the Numba kernels have one width."""
    if not hasattr(k, "AVX512"):
        if isa == "avx512":
            pytest.skip("the Numba kernels have no AVX-512 variant (their 'avx2' case runs)")
    elif isa == "avx2":
        monkeypatch.setattr(k, "AVX512", False)
    elif not k.AVX512:
        pytest.skip("this CPU (or build) has no AVX-512 kernels")


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
@pytest.mark.parametrize("offset", [0, 1, 4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GEMM_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_weight_gradient_any_alignment(monkeypatch, backend, case, dtype, offset, isa):
    k = backends.get(backend).k.conv_direct
    _vector_width(monkeypatch, k, isa)
    rng = np.random.default_rng(sum(case[:8]) + offset)
    x, w, y_shape, args = _case_arrays(case, rng)
    n, oh, ow, _ = y_shape
    _, gy, _, gw_ref = _reference(x, w, y_shape, rng, *args)
    x, gy = x.astype(dtype), _at_offset(gy.astype(dtype), offset)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        outs = [(np.full(w.shape, np.nan, dtype), np.full(gy.shape[3], np.nan, dtype))
                for _ in range(2)]
        for gw, gb in outs:
            k.backward_weight(gy, x, gw, *args, gb=gb)
    finally:
        fastconv.set_num_threads(old)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    atol = tol * np.sqrt(n * oh * ow)
    np.testing.assert_allclose(outs[0][0], gw_ref, rtol=tol, atol=atol, err_msg=str(case))
    np.testing.assert_allclose(outs[0][1], gy.astype(np.float64).sum(axis=(0, 1, 2)), rtol=tol,
                               atol=atol, err_msg=str(case))
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, b)   # the same bits on every call


def _one_pass_case(rng):
    """A random geometry of the one-pass backward (one group, few input channels, many outputs,
    unit column stride and dilation): odd widths, batch 1, padding, row strides, dilation."""
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, dh = (int(v) for v in rng.choice([1, 1, 2], 2))
    pt, pl = int(rng.integers(0, kh + 1)), int(rng.integers(0, kw + 2))
    h, wd = int(rng.integers(max(1, (kh - 1) * dh + 1 - pt), 16)), int(rng.integers(kw, 45))
    return (int(rng.integers(1, 4)), h, wd, 1, int(rng.integers(1, 6)),
            int(rng.choice([16, 19, 32, 40, 64])), kh, kw, (sh, 1), (pt, pl), (dh, 1),
            (int(rng.integers(0, 2)), int(rng.integers(0, 3))))


def _backward_cases():
    """Random one-pass cases (every gy alignment, 1 to 3 threads, with and without gx and gb),
    and fallback cases (groups, wide input channels, column stride, few outputs)."""
    rng = np.random.default_rng(11)
    cases = [(_one_pass_case(rng), int(rng.integers(0, 8)), 1 + i % 3, i % 5 != 4, i % 3 != 2)
             for i in range(10)]
    cases += [((1, 32, 32, 1, 3, 64, 3, 3, (1, 1), (0, 0), (1, 1), (0, 0)), 4, 2, True, True)]
    return cases + [(c, 1, 2, True, True) for c in CASES[2:8]]


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case, offset, threads, need_gx, need_gb", _backward_cases())
@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_backward_both_gradients(monkeypatch, backend, case, offset, threads, need_gx,
                                        need_gb, dtype, isa):
    """``conv_direct.backward``: gx, gw and gb against the reference, the same bits on every
    call; in Cython the one-pass path for its geometries, the two kernels for the others."""
    k = backends.get(backend).k.conv_direct
    _vector_width(monkeypatch, k, isa)
    rng = np.random.default_rng(sum(case[:8]) + offset)
    x, w, y_shape, args = _case_arrays(case, rng)
    n, oh, ow, o = y_shape
    _, gy, gx_ref, gw_ref = _reference(x, w, y_shape, rng, *args)
    x, w, gy = x.astype(dtype), w.astype(dtype), _at_offset(gy.astype(dtype), offset)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        outs = []
        for _ in range(2):
            gx = np.full(x.shape, np.nan, dtype) if need_gx else None
            gw, gb = np.full(w.shape, np.nan, dtype), np.full(o, np.nan, dtype)
            k.backward(gy, x, w, gx, gw, *args, gb=gb if need_gb else None)
            outs.append((gw, gb) + ((gx,) if need_gx else ()))
    finally:
        fastconv.set_num_threads(old)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    atol = tol * np.sqrt(n * oh * ow)
    np.testing.assert_allclose(outs[0][0], gw_ref, rtol=tol, atol=atol, err_msg=str(case))
    if need_gb:
        np.testing.assert_allclose(outs[0][1], gy.astype(np.float64).sum(axis=(0, 1, 2)),
                                   rtol=tol, atol=atol, err_msg=str(case))
    else:
        assert np.isnan(outs[0][1]).all()
    if need_gx:
        np.testing.assert_allclose(outs[0][2], gx_ref, rtol=tol,
                                   atol=tol * np.sqrt(np.prod(case[5:8])), err_msg=str(case))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)   # the same bits on every call


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_backward_rejects_bad_arguments(backend):
    k = backends.get(backend).k.conv_direct
    x, w = np.zeros((1, 5, 5, 3), np.float32), np.zeros((3, 3, 3, 16), np.float32)
    gy, gx, gw, gb = (np.zeros(s, np.float32) for s in ((1, 3, 3, 16), x.shape, w.shape, 16))
    args = (1, 1, 0, 0, 1, 1, 1)
    k.backward(gy, x, w, gx, gw, *args, gb=gb)   # valid
    bad = [dict(gw=np.zeros((3, 3, 3, 8), np.float32)),          # gw's shape
           dict(gx=np.zeros((1, 5, 4, 3), np.float32)),          # gx's shape
           dict(gx=x),                                          # gx is x
           dict(gb=gw.reshape(-1)[:16]),                        # gb overlaps gw
           dict(gb=np.zeros(8, np.float32)),                    # gb's shape
           dict(gb=np.zeros(16)),                               # gb's dtype
           dict(gy=np.zeros((1, 3, 2, 16), np.float32)),         # gy too narrow for x
           dict(gy=np.zeros((1, 3, 3, 16))),                    # gy's dtype
           dict(w=np.zeros((3, 3, 2, 16), np.float32)),          # channels
           dict(gx=np.zeros((5, 5, 3), np.float32)),             # rank
           dict(gw=np.zeros(w.shape, np.float32)[:, ::-1])]      # not contiguous
    for change in bad:
        a = dict(gy=gy, x=x, w=w, gx=gx, gw=gw, gb=gb) | change
        with pytest.raises(ValueError):
            k.backward(a["gy"], a["x"], a["w"], a["gx"], a["gw"], *args, gb=a["gb"])
    with pytest.raises(ValueError):
        k.backward(gy, x, w, gx, gw, 1, 0, 0, 0, 1, 1, 1)       # column stride 0


def _adjoint_cases():
    """Stride-1 layers with few outputs per group: padding and implied end padding from 0 to
    one past the filter's span (past it: no forward-pass form, the input-gradient kernel)."""
    rng = np.random.default_rng(5)

    def pad(span):   # one past the span now and then
        return int(rng.integers(0, span + 1)) if rng.random() < 0.9 else span + 1
    cases = []
    for _ in range(12):
        kh, kw, dh, dw = (int(v) for v in rng.integers(1, 4, 4))
        pt, eh = pad((kh - 1) * dh), pad((kh - 1) * dh)
        pl, ew = pad((kw - 1) * dw), pad((kw - 1) * dw)
        h, wd = (int(v) for v in rng.integers(1, 9, 2) + (np.array([kh, kw]) - 1) * [dh, dw])
        cases.append((int(rng.integers(1, 3)), h, wd, int(rng.integers(1, 5)),
                      int(rng.integers(1, 6)), int(rng.integers(1, 8)), kh, kw, (1, 1), (pt, pl),
                      (dh, dw), (eh, ew)))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_input_gradient_as_a_forward_pass(backend, dtype):
    """``backward_input`` with fewer than ``_adjoint.FEW`` outputs per group, stride 1, runs the
    forward kernel on gy with the flipped filter where the paddings allow: the reference's gx
    either way."""
    k = backends.get(backend).k.conv_direct
    rng = np.random.default_rng(6)
    forward_form = 0
    for case in _adjoint_cases():
        x, w, y_shape, args = _case_arrays(case, rng)
        _, gy, gx_ref, _ = _reference(x, w, y_shape, rng, *args)
        forward_form += _adjoint.as_forward(w, x.shape[1:3], y_shape[1:3], *args) is not None
        gx = np.full(x.shape, np.nan, dtype)
        k.backward_input(gy.astype(dtype), w.astype(dtype), gx, *args)
        tol = 2e-4 if dtype == np.float32 else 1e-11
        np.testing.assert_allclose(gx, gx_ref, rtol=tol, atol=tol * np.sqrt(w.size),
                                   err_msg=str(case))
    assert 4 <= forward_form <= 10   # both forms drawn
