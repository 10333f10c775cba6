"""Pooling task layouts the small hypothesis cases of test_pool.py never reach: backward tasks
that span bands of several output rows (batch x output rows > 128, so overlapping windows
straddle band edges) or whole images, more than 256 channels (Cython's scratch blocks), with
ties and NaN in the windows."""
import numpy as np
import pytest

import fastconv
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
