"""Pooling task layouts the small hypothesis cases of test_pool.py never reach: backward tasks
that span bands of several output rows (batch x output rows > 128, so overlapping windows
straddle band edges) or whole images, more than 256 channels (Cython's scratch blocks), with
ties and NaN in the windows."""
import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import CPU_BACKEND_PARAMS
from helpers import assert_close

FAST_CPU = [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"]

CASES = [  # (n, h, w, c), pool_size, strides, padding
    ((64, 15, 15, 3), 3, 2, "same"),    # 8 output rows, bands of 4, overlap across band edges
    ((40, 13, 11, 2), 3, 1, "valid"),   # stride 1: windows overlap by two rows
    ((48, 12, 12, 3), 2, 2, "valid"),   # disjoint windows, bands of 2 rows
    ((24, 17, 17, 2), 2, 3, "valid"),   # stride > window: uncovered rows and columns
    ((2, 5, 6, 300), 3, 2, "same"),     # channels beyond one 256-channel block
]


@pytest.mark.parametrize("name", FAST_CPU)
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, padding", CASES)
def test_pool_bands_and_blocks_match_reference(name, mode, dtype, shape, k, s, padding):
    rng = np.random.default_rng(sum(shape) + k + s)
    x = rng.integers(-2, 3, shape).astype(dtype)  # few values: ties in most windows
    x[rng.random(shape) < 0.02] = np.nan
    kw = dict(pool_size=k, strides=s, padding=padding)
    fwd, bwd = getattr(fastconv, f"{mode}_pool2d"), getattr(fastconv, f"{mode}_pool2d_backward")
    y = fwd(x, backend=name, **kw)
    assert_close(y, fwd(x, backend="reference", **kw), dtype, k * k)  # NaN where the reference's
    dy = rng.standard_normal(y.shape).astype(dtype)
    # max: the first NaN, else the first maximum, of each window gets its gradient
    assert_close(bwd(dy, x, backend=name, **kw), bwd(dy, x, backend="reference", **kw), dtype,
                 k * k)
    if mode == "max":  # the offset kernels: same output, same gradient without reading x
        y_idx, idx = fwd(x, backend=name, return_indices=True, **kw)
        np.testing.assert_array_equal(y_idx, y)
        assert_close(bwd(dy, x, backend=name, indices=idx, **kw),
                     bwd(dy, x, backend="reference", **kw), dtype, k * k)


def _offset_arrays():
    x = np.zeros((2, 6, 6, 3), np.float32)
    return x, np.empty((2, 3, 3, 3), np.float32), np.zeros((2, 3, 3, 3), np.uint8)


@pytest.mark.parametrize("name", FAST_CPU)
def test_offset_kernels_refuse_bad_arrays(name):
    pool = fastconv.backends.get(name).k.pool
    x, y, idx = _offset_arrays()
    ro = idx.copy()
    ro.flags.writeable = False
    bad = [(idx.astype(np.int8), "uint8"), (idx[:1], "shape"), (ro, "read-only"),
           (np.zeros((2, 3, 3, 6), np.uint8)[..., ::2], "C-contiguous"),
           (y.view(np.uint8).reshape(-1)[:idx.size].reshape(idx.shape), "overlaps y")]
    for a, match in bad:
        with pytest.raises(ValueError, match=match):
            pool.max_forward_indices(x, y, a, 2, 2, 2, 2, 0, 0)
    with pytest.raises(ValueError, match="overlaps gx"):
        pool.max_backward_indices(x.view(np.uint8).reshape(-1)[:idx.size].reshape(idx.shape),
                                  y, x, 2, 2, 2, 2, 0, 0)
    big = np.zeros((1, 17, 16, 1), np.float32)
    with pytest.raises(ValueError, match="256"):
        pool.max_forward_indices(big, np.empty((1, 1, 1, 1), np.float32),
                                 np.empty((1, 1, 1, 1), np.uint8), 17, 16, 1, 1, 0, 0)


@pytest.mark.parametrize("name", FAST_CPU)
@pytest.mark.parametrize("k, s, padding", [(3, 2, "same"), (2, 2, "valid"), (2, 3, "same")])
def test_offset_backward_takes_any_byte(name, k, s, padding):
    """Offsets past the window or naming a padded cell send their gradient nowhere (and never
    address memory): as the array-op fallback does."""
    rng = np.random.default_rng(k + s)
    x = np.zeros((3, 11, 10, 5))
    xp, be, x, g = F._prepare_pool(x, k, s, padding, "channels_last", name)
    idx = rng.integers(0, 256, g.output_shape).astype(np.uint8)
    idx[rng.random(idx.shape) < 0.7] %= k * k  # mostly real offsets
    dy = rng.standard_normal(g.output_shape)
    dx = np.full(x.shape, np.nan)
    be.k.pool.max_backward_indices(idx, dy, dx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
    np.testing.assert_allclose(dx, F._scatter_offsets(np, dy, idx, g), rtol=1e-14, atol=1e-14)
