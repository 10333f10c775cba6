"""The public ops: validate → put in the kernels' layout → choose the algorithm → run a backend.

Arrays: arrays of library L in → arrays of library L out. NumPy arrays run on the configured
backend, CuPy arrays on 'cupy'; any other array with ``__dlpack__`` or
``__cuda_array_interface__`` (PyTorch, JAX, Numba) is viewed as a NumPy (CPU) or CuPy (CUDA)
array and the results are handed back through its library's ``from_dlpack``: no copy when the
input is C-contiguous in the kernel's layout, non-contiguous inputs are copied once (the rule:
:mod:`fastconv.interop.dlpack`).
Both data formats work everywhere; weights follow the data format's home framework:
``channels_last`` → ``(kh, kw, in/groups, out)`` (Keras), ``channels_first`` →
``(out, in/groups, kh, kw)`` (PyTorch). The kernels run NHWC / HWIO; channels_first arrays
are transposed at the edges (one copy in, one out).

Gradients: :func:`conv2d_backward` returns all three gradients in one call (``dx`` may be
skipped with ``need_input_grad=False``, as a network's first layer does); pooling has
``max_pool2d_backward`` / ``avg_pool2d_backward`` / ``global_avg_pool2d_backward``.

``algorithm='auto'`` (see :func:`choose_algorithm`): '1x1' for unpadded 1x1 filters,
'depthwise' when every group has one input channel, else 'im2col' — which beat 'direct' on
every lecture shape, thin first layers and 32-group ResNeXt included (bench/results).
"""
from collections import namedtuple
import numbers

import numpy as np

from fastconv import backends
from fastconv._config import get_backend
from fastconv._shapes import (check_data_format, conv_output_shape, conv_output_size,  # noqa: F401
                              make_geometry)
from fastconv.interop.dlpack import accepts_any_array

ALGORITHMS = ("auto", "direct", "im2col", "1x1", "depthwise")
DTYPES = (np.float32, np.float64)

Conv2DGrads = namedtuple("Conv2DGrads", "dx dw db")
Conv2DGrads.__doc__ = "Gradients of conv2d with respect to input, weights and bias."


# ------------------------------------------------------------------------- validation
def _array_module(*arrays):
    mods = {type(a).__module__.split(".")[0] for a in arrays if a is not None}
    if "cupy" in mods:
        import cupy
        return cupy
    return np


def _as_float_array(xp, a, name, ndim, dtype=None):
    a = xp.asarray(a)
    if a.dtype not in DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}; fastconv takes float32 or float64")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but x has {dtype}; pass one dtype")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def _resolve_backend(xp, backend):
    name = backend or ("cupy" if xp is not np else get_backend())
    found = backends.get(name)
    if (name == "cupy") != (xp is not np):
        kind = "CuPy" if xp is not np else "NumPy"
        raise TypeError(f"backend {name!r} cannot run on {kind} arrays")
    return found


def _to_nhwc(xp, x, data_format):
    check_data_format(data_format)
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    return xp.ascontiguousarray(x)


def _from_nhwc(xp, y, data_format):
    return xp.ascontiguousarray(y.transpose(0, 3, 1, 2)) if data_format == "channels_first" else y


def _check_nonempty(x, name="x"):
    if 0 in x.shape[1:]:
        raise ValueError(f"{name} has an empty spatial or channel axis: shape {x.shape}")


def choose_algorithm(g, algorithm="auto"):
    """The algorithm for geometry ``g``: the rule in the module docstring, or check a forced one."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    cg = g.c // g.groups
    is_1x1 = g.kh == g.kw == 1 and not g.padded
    if algorithm == "auto":
        if is_1x1:
            return "1x1"
        if cg == 1 and g.groups > 1:
            return "depthwise"
        return "im2col"
    if algorithm == "1x1" and not is_1x1:
        raise ValueError(f"algorithm '1x1' needs a 1x1 filter without padding, got filter "
                         f"{g.kh}x{g.kw}, padding {((g.pt, g.pb), (g.pl, g.pr))}")
    if algorithm == "depthwise" and cg != 1:
        raise ValueError(f"algorithm 'depthwise' needs groups == input channels, got groups="
                         f"{g.groups} for {g.c} channels")
    return algorithm


ConvCall = namedtuple("ConvCall", "xp backend x w g algorithm")


def _prepare_conv(x, w, strides, padding, dilation, groups, data_format, algorithm, backend):
    xp = _array_module(x, w)
    x = _as_float_array(xp, x, "x", 4)
    w = _as_float_array(xp, w, "w", 4, x.dtype)
    be = _resolve_backend(xp, backend)
    x, w = _to_nhwc(xp, x, data_format), _hwio(xp, w, data_format)
    _check_nonempty(x)
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    kh, kw, cg, o = w.shape
    c = x.shape[3]
    if c % groups or cg != c // groups or o % groups or o == 0:
        layout = "(kh, kw, in/groups, out)" if data_format == "channels_last" else \
            "(out, in/groups, kh, kw)"
        raise ValueError(f"w {layout} does not fit x with {c} channels and groups={groups}: "
                         f"need in/groups = {c / groups:g} and out divisible by groups; "
                         f"got w as (kh, kw, in/groups, out) = {w.shape}")
    g = make_geometry(x.shape, (kh, kw), o, groups, strides, padding, dilation, "kernel")
    return ConvCall(xp, be, x, w, g, choose_algorithm(g, algorithm))


def _hwio(xp, w, data_format):
    check_data_format(data_format)
    return xp.ascontiguousarray(w.transpose(2, 3, 1, 0) if data_format == "channels_first" else w)


def _bias(xp, b, o, dtype):
    if b is None:
        return None
    b = _as_float_array(xp, b, "b", 1, dtype)
    if b.shape != (o,):
        raise ValueError(f"b must have shape ({o},) for {o} filters, got {b.shape}")
    return b


# ------------------------------------------------------------------------- convolution
@accepts_any_array("x", "w", "b")
def conv2d(x, w, b=None, strides=1, padding="valid", dilation=1, groups=1,
           data_format="channels_last", algorithm="auto", backend=None):
    """2-D cross-correlation (what deep learning calls convolution) of a batch.

    x: ``(N, H, W, C)`` (channels_first ``(N, C, H, W)``); w: see the module docstring;
    b: ``(out,)`` or None. padding: 'valid', 'same' (Keras' rule), an int, a pair, or
    ``((top, bottom), (left, right))``. strides, dilation: an int or a pair.
    """
    call = _prepare_conv(x, w, strides, padding, dilation, groups, data_format, algorithm,
                         backend)
    b = _bias(call.xp, b, call.g.o, call.x.dtype)
    if call.g.n == 0:
        y = call.xp.zeros(call.g.output_shape, call.x.dtype)
    else:
        y = call.backend.conv2d(call.x, call.w, call.g, call.algorithm)
    if b is not None:
        y += b
    return _from_nhwc(call.xp, y, data_format)


@accepts_any_array("dy", "x", "w")
def conv2d_backward(dy, x, w, strides=1, padding="valid", dilation=1, groups=1,
                    data_format="channels_last", algorithm="auto", backend=None,
                    need_input_grad=True):
    """Gradients of :func:`conv2d` given the output gradient ``dy``: ``Conv2DGrads(dx, dw, db)``.

    Shapes and layouts match ``x``, ``w`` and the bias; ``dx`` is None when
    ``need_input_grad`` is False.
    """
    call = _prepare_conv(x, w, strides, padding, dilation, groups, data_format, algorithm,
                         backend)
    xp, g = call.xp, call.g
    dy = _as_float_array(xp, dy, "dy", 4, call.x.dtype)
    dy = _to_nhwc(xp, dy, data_format)
    if dy.shape != g.output_shape:
        raise ValueError(f"dy has shape {dy.shape} (NHWC) but the output of this convolution "
                         f"is {g.output_shape}")
    if g.n == 0:
        dx, dw = xp.zeros_like(call.x), xp.zeros_like(call.w)
    else:
        dx, dw = call.backend.conv2d_backward(dy, call.x, call.w, g, call.algorithm,
                                              need_input_grad)
    if dx is not None:
        dx = _from_nhwc(xp, dx, data_format)
    if data_format == "channels_first":
        dw = xp.ascontiguousarray(dw.transpose(3, 2, 0, 1))
    return Conv2DGrads(dx, dw, dy.sum(axis=(0, 1, 2)))


# ------------------------------------------------------------------------- pooling
def _prepare_pool(x, pool_size, strides, padding, data_format, backend):
    xp = _array_module(x)
    x = _as_float_array(xp, x, "x", 4)
    be = _resolve_backend(xp, backend)
    x = _to_nhwc(xp, x, data_format)
    _check_nonempty(x)
    g = make_geometry(x.shape, pool_size, x.shape[3], x.shape[3],
                      pool_size if strides is None else strides, padding, 1, "pool")
    if max(g.pt, g.pb) >= g.kh or max(g.pl, g.pr) >= g.kw:
        raise ValueError(f"pool padding {((g.pt, g.pb), (g.pl, g.pr))} must be smaller than the "
                         f"pool size {(g.kh, g.kw)} on every side")
    return xp, be, x, g


def _pool(mode, x, pool_size, strides, padding, data_format, backend):
    xp, be, x, g = _prepare_pool(x, pool_size, strides, padding, data_format, backend)
    y = xp.zeros(g.output_shape, x.dtype) if g.n == 0 else be.pool2d(mode, x, g)
    return _from_nhwc(xp, y, data_format)


def _pool_backward(mode, dy, x, pool_size, strides, padding, data_format, backend):
    xp, be, x, g = _prepare_pool(x, pool_size, strides, padding, data_format, backend)
    dy = _to_nhwc(xp, _as_float_array(xp, dy, "dy", 4, x.dtype), data_format)
    if dy.shape != g.output_shape:
        raise ValueError(f"dy has shape {dy.shape} (NHWC) but the pooled output is "
                         f"{g.output_shape}")
    dx = xp.zeros_like(x) if g.n == 0 else be.pool2d_backward(mode, dy, x, g)
    return _from_nhwc(xp, dx, data_format)


@accepts_any_array("x")
def max_pool2d(x, pool_size=2, strides=None, padding="valid", data_format="channels_last",
               backend=None):
    """Max pooling per channel (Keras' arguments: ``strides`` defaults to ``pool_size``).

    A window's value is its first NaN if it holds one, else its maximum; padded cells are
    ignored.
    """
    return _pool("max", x, pool_size, strides, padding, data_format, backend)


@accepts_any_array("x")
def avg_pool2d(x, pool_size=2, strides=None, padding="valid", data_format="channels_last",
               backend=None):
    """Average pooling per channel; 'same' padding averages over the real cells only (Keras)."""
    return _pool("avg", x, pool_size, strides, padding, data_format, backend)


@accepts_any_array("dy", "x")
def max_pool2d_backward(dy, x, pool_size=2, strides=None, padding="valid",
                        data_format="channels_last", backend=None):
    """Gradient of :func:`max_pool2d`: ``dy`` goes to each window's winning cell."""
    return _pool_backward("max", dy, x, pool_size, strides, padding, data_format, backend)


@accepts_any_array("dy", "x")
def avg_pool2d_backward(dy, x, pool_size=2, strides=None, padding="valid",
                        data_format="channels_last", backend=None):
    """Gradient of :func:`avg_pool2d`: ``dy`` spread evenly over each window's real cells."""
    return _pool_backward("avg", dy, x, pool_size, strides, padding, data_format, backend)


def _spatial_axes(data_format):
    check_data_format(data_format)
    return (1, 2) if data_format == "channels_last" else (2, 3)


@accepts_any_array("x")
def global_avg_pool2d(x, data_format="channels_last", keepdims=False):
    """Mean over the spatial axes: ``(N, H, W, C)`` → ``(N, C)``."""
    xp = _array_module(x)
    x = _as_float_array(xp, x, "x", 4)
    _check_nonempty(x)
    return x.mean(axis=_spatial_axes(data_format), keepdims=keepdims)


@accepts_any_array("dy", "x")
def global_avg_pool2d_backward(dy, x, data_format="channels_last"):
    """Gradient of :func:`global_avg_pool2d`: ``dy / (H*W)`` on every cell."""
    xp = _array_module(x)
    x = _as_float_array(xp, x, "x", 4)
    axes = _spatial_axes(data_format)
    dy = xp.asarray(dy)
    dy = _as_float_array(xp, dy, "dy", dy.ndim, x.dtype)
    expected = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    squeezed = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    if dy.shape not in (expected, squeezed):
        raise ValueError(f"dy must have shape {squeezed} or {expected}, got {dy.shape}")
    dy = dy.reshape(expected) / (x.shape[axes[0]] * x.shape[axes[1]])
    return xp.broadcast_to(dy, x.shape).copy()
