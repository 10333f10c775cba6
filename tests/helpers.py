"""Array helpers shared by the correctness tests."""
import numpy as np

import fastconv

RTOL = {np.float32: 2e-4, np.float64: 1e-10}


def random_array(rng, shape, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape).astype(dtype)


def layout_shapes(case, data_format):
    """Shapes of x, w and b for a case, in the data format's home layout."""
    if data_format == "channels_last":
        x = (case.n, case.h, case.w, case.c)
        w = (case.kh, case.kw, case.c // case.groups, case.o)
    else:
        x = (case.n, case.c, case.h, case.w)
        w = (case.o, case.c // case.groups, case.kh, case.kw)
    return x, w, (case.o,)


def conv_kwargs(case, data_format):
    return dict(strides=case.strides, padding=case.padding, dilation=case.dilation,
                groups=case.groups, data_format=data_format)


def assert_close(actual, expected, dtype, terms):
    """Equal up to the rounding of ``terms`` products of O(1) numbers in ``dtype``."""
    dtype = np.dtype(dtype).type
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * max(1.0, np.sqrt(terms)))


def reference(fn, *args, **kwargs):
    """Call a fastconv op on the float64 reference backend."""
    return getattr(fastconv, fn)(*args, backend="reference", **kwargs)
