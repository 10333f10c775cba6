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

``algorithm='auto'`` (see :func:`choose_algorithm`; measured in bench/results, reasons in
bench/NOTES.md): '1x1' for unpadded 1x1 filters; 'depthwise' when every group has one input
channel; 'direct' for thin groups (at most 4 input channels per group, as in the first layers,
or grouped convolutions with fewer than 16 input and output channels per group); 'winograd'
for dense 3x3 stride-1 filters over 16 or more channels; else 'im2col'. With the autotuner on
(:mod:`fastconv.tune`), 'auto' times the applicable algorithms instead.
"""
from collections import namedtuple
import math

import numpy as np

from fastconv import backends, tune
from fastconv._config import get_backend
from fastconv._shapes import (check_data_format, conv_output_shape, conv_output_size,  # noqa: F401
                              is_int, make_geometry)
from fastconv.interop.dlpack import accepts_any_array

ALGORITHMS = ("auto", "direct", "im2col", "1x1", "depthwise", "winograd")
DTYPES = (np.float32, np.float64)
FUSED_ACTIVATIONS = (None, "linear", "relu")

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


def _mismatch(g, algorithm):
    """Why ``algorithm`` cannot compute geometry ``g``; None when it can."""
    if algorithm == "1x1" and not (g.kh == g.kw == 1 and not g.padded):
        return (f"algorithm '1x1' needs a 1x1 filter without padding, got filter {g.kh}x{g.kw}, "
                f"padding {((g.pt, g.pb), (g.pl, g.pr))}")
    if algorithm == "depthwise" and g.c // g.groups != 1:
        return (f"algorithm 'depthwise' needs groups == input channels, got groups={g.groups} "
                f"for {g.c} channels")
    if algorithm == "winograd" and not (g.kh == g.kw == 3 and g.sh == g.sw == 1
                                        and g.dil_h == g.dil_w == 1 and g.groups == 1):
        return (f"algorithm 'winograd' needs a 3x3 filter, stride 1, dilation 1 and groups=1, "
                f"got filter {g.kh}x{g.kw}, strides {(g.sh, g.sw)}, dilation "
                f"{(g.dil_h, g.dil_w)}, groups={g.groups}")
    return None


def applicable_algorithms(g):
    """Every algorithm that can compute geometry ``g`` (what the autotuner times)."""
    return [a for a in ALGORITHMS[1:] if _mismatch(g, a) is None]


def choose_algorithm(g, algorithm="auto", backend="cython"):
    """The algorithm for geometry ``g`` on the backend named ``backend``: the static rule of the
    module docstring for 'auto' (the autotuner, :mod:`fastconv.tune`, refines it per call when
    on; the 'cupy' backend keeps the rule measured on a GPU: '1x1', 'depthwise', else 'im2col'),
    else check the forced one."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "auto":
        cg, og = g.c // g.groups, g.o // g.groups
        if _mismatch(g, "1x1") is None:
            return "1x1"
        if cg == 1 and g.groups > 1:
            return "depthwise"
        if backend == "cupy":      # what was measured on a GPU (bench/results/gpu-h200)
            return "im2col"
        if cg <= 4 or (g.groups > 1 and cg < 16 and og < 16):
            return "direct"
        if _mismatch(g, "winograd") is None and g.c >= 16:
            return "winograd"
        return "im2col"
    why = _mismatch(g, algorithm)
    if why:
        raise ValueError(why)
    return algorithm


ConvCall = namedtuple("ConvCall", "xp backend x w g algorithm auto")


def _prepare_conv(x, w, strides, padding, dilation, groups, data_format, algorithm, backend):
    xp = _array_module(x, w)
    x = _as_float_array(xp, x, "x", 4)
    w = _as_float_array(xp, w, "w", 4, x.dtype)
    be = _resolve_backend(xp, backend)
    x, w = _to_nhwc(xp, x, data_format), _hwio(xp, w, data_format)
    _check_nonempty(x)
    if not is_int(groups) or groups < 1:
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
    return ConvCall(xp, be, x, w, g, choose_algorithm(g, algorithm, be.name),
                    algorithm == "auto")


def _algorithm(call, direction, run, need_input_grad=True):
    """The call's algorithm; for 'auto' with the autotuner on, the tuned one (``run(a)`` runs
    the call with algorithm ``a``)."""
    if not (call.auto and tune.enabled() and call.backend.name in tune.TUNED_BACKENDS):
        return call.algorithm
    key = tune.case_key(direction, call.backend.name, call.x.dtype, call.g, need_input_grad)
    return tune.choose(key, applicable_algorithms(call.g), run)


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
           data_format="channels_last", algorithm="auto", backend=None, activation=None):
    """2-D cross-correlation (what deep learning calls convolution) of a batch.

    x: ``(N, H, W, C)`` (channels_first ``(N, C, H, W)``); w: see the module docstring;
    b: ``(out,)`` or None. padding: 'valid', 'same' (Keras' rule), an int, a pair, or
    ``((top, bottom), (left, right))``. strides, dilation: an int or a pair.
    activation: None (or 'linear') or 'relu', applied with the bias in one pass over the output.
    """
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"activation must be one of {FUSED_ACTIVATIONS}, got {activation!r}")
    call = _prepare_conv(x, w, strides, padding, dilation, groups, data_format, algorithm,
                         backend)
    b = _bias(call.xp, b, call.g.o, call.x.dtype)
    if call.g.n == 0:
        y = call.xp.zeros(call.g.output_shape, call.x.dtype)
    else:
        def run(algorithm):
            return call.backend.conv2d(call.x, call.w, call.g, algorithm, b, activation == "relu")
        y = run(_algorithm(call, "forward", run))
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
        dx, dw, db = xp.zeros_like(call.x), xp.zeros_like(call.w), xp.zeros(g.o, call.x.dtype)
    else:
        def run(algorithm):
            return call.backend.conv2d_backward(dy, call.x, call.w, g, algorithm, need_input_grad)
        dx, dw, db = run(_algorithm(call, "backward", run, need_input_grad))
    if dx is not None:
        dx = _from_nhwc(xp, dx, data_format)
    if data_format == "channels_first":
        dw = xp.ascontiguousarray(dw.transpose(3, 2, 0, 1))
    return Conv2DGrads(dx, dw, db)


# ------------------------------------------------------------------------- pooling
MAX_OFFSET_CELLS = 256     # max pooling's uint8 offsets name at most this many window cells
MaxPool2DWithIndices = namedtuple("MaxPool2DWithIndices", "y indices")
MaxPool2DWithIndices.__doc__ = ("max_pool2d's output and, per output, its winner's offset "
                                "i*kw + j in the window (uint8).")


def _prepare_pool(x, pool_size, strides, padding, data_format, backend, values=True,
                  offsets=False):
    """Without ``values`` (a gradient from offsets) only x's shape and dtype are read: x is
    viewed as NHWC, not copied. ``offsets``: the window must fit uint8 offsets."""
    xp = _array_module(x)
    x = _as_float_array(xp, x, "x", 4)
    be = _resolve_backend(xp, backend)
    if values:
        x = _to_nhwc(xp, x, data_format)
    else:
        check_data_format(data_format)
        x = x.transpose(0, 2, 3, 1) if data_format == "channels_first" else x
    _check_nonempty(x)
    g = make_geometry(x.shape, pool_size, x.shape[3], x.shape[3],
                      pool_size if strides is None else strides, padding, 1, "pool")
    if max(g.pt, g.pb) >= g.kh or max(g.pl, g.pr) >= g.kw:
        raise ValueError(f"pool padding {((g.pt, g.pb), (g.pl, g.pr))} must be smaller than the "
                         f"pool size {(g.kh, g.kw)} on every side")
    if offsets and g.kh * g.kw > MAX_OFFSET_CELLS:
        raise ValueError(f"max pooling's indices are uint8 offsets: windows of at most "
                         f"{MAX_OFFSET_CELLS} cells, got {g.kh}x{g.kw} = {g.kh * g.kw}")
    return xp, be, x, g


def _offset_kernels(be):
    """True if ``be``'s kernels keep and scatter max pooling's offsets (the CPU backends)."""
    return hasattr(getattr(getattr(be, "k", None), "pool", None), "max_forward_indices")


def _native_offsets(x, pool_size, backend=None):
    """True if max pooling ``x`` in ``pool_size`` windows on ``backend`` gets its indices from
    the kernels (windows of at most ``MAX_OFFSET_CELLS`` cells)."""
    return (math.prod(pool_size) <= MAX_OFFSET_CELLS
            and _offset_kernels(_resolve_backend(_array_module(x), backend)))


def _window_cells(g):
    """Per window cell: its offset ``i*kw + j``, the outputs whose window holds it as a real
    cell and those cells of the input, as NHWC slices (the array-op fallbacks' loop)."""
    def cover(i, s, p, size, out):
        lo = max(0, -((i - p) // s))
        hi = max(lo, min(out, (size - 1 + p - i) // s + 1))
        start = lo * s - p + i
        return slice(lo, hi), slice(start, start + (hi - lo - 1) * s + 1 if hi > lo else start, s)
    for i in range(g.kh):
        rows_out, rows_in = cover(i, g.sh, g.pt, g.h, g.oh)
        for j in range(g.kw):
            cols_out, cols_in = cover(j, g.sw, g.pl, g.w, g.ow)
            yield i * g.kw + j, (slice(None), rows_out, cols_out), (slice(None), rows_in, cols_in)


def _window_offsets(xp, x, y, g):
    """The winners' offsets from x and its max pooling y, in array operations (backends without
    offset kernels): the first cell holding a NaN, else the first equal to y."""
    idx = xp.zeros(y.shape, xp.uint8)
    found = xp.zeros(y.shape, bool)
    for k, out, cells in _window_cells(g):
        v, won = x[cells], found[out]
        hit = ((v == y[out]) | (v != v)) & ~won
        idx[out][hit] = k
        won |= hit
    return idx


def _scatter_offsets(xp, dy, idx, g):
    """Max pooling's input gradient from offsets, in array operations (backends without offset
    kernels)."""
    dx = xp.zeros(g.input_shape, dy.dtype)
    for k, out, cells in _window_cells(g):
        dx[cells] += xp.where(idx[out] == k, dy[out], dy.dtype.type(0))
    return dx


def _pool(mode, x, pool_size, strides, padding, data_format, backend, indices=False):
    xp, be, x, g = _prepare_pool(x, pool_size, strides, padding, data_format, backend,
                                 offsets=indices)
    if not indices:
        y = xp.zeros(g.output_shape, x.dtype) if g.n == 0 else be.pool2d(mode, x, g)
        return _from_nhwc(xp, y, data_format)
    if g.n == 0:
        y, idx = xp.zeros(g.output_shape, x.dtype), xp.zeros(g.output_shape, xp.uint8)
    elif _offset_kernels(be):
        y, idx = be.pool2d(mode, x, g, indices=True)
    else:
        y = be.pool2d(mode, x, g)
        idx = _window_offsets(xp, x, y, g)
    return MaxPool2DWithIndices(_from_nhwc(xp, y, data_format), _from_nhwc(xp, idx, data_format))


def _pool_backward(mode, dy, x, pool_size, strides, padding, data_format, backend,
                   indices=None):
    xp, be, x, g = _prepare_pool(x, pool_size, strides, padding, data_format, backend,
                                 values=indices is None, offsets=indices is not None)
    dy = _as_float_array(xp, dy, "dy", 4, x.dtype)
    if indices is not None:
        indices = xp.asarray(indices)
        if indices.dtype != xp.uint8 or indices.shape != dy.shape:
            raise ValueError(f"indices must be uint8 of dy's shape {dy.shape} (from max_pool2d("
                             f"..., return_indices=True)), got {indices.dtype} {indices.shape}")
        top = int(indices.max()) if indices.size else 0
        if top >= g.kh * g.kw:
            raise ValueError(f"indices holds the offset {top}, outside the {g.kh}x{g.kw} window")
        indices = _to_nhwc(xp, indices, data_format)
    dy = _to_nhwc(xp, dy, data_format)
    if dy.shape != g.output_shape:
        raise ValueError(f"dy has shape {dy.shape} (NHWC) but the pooled output is "
                         f"{g.output_shape}")
    if g.n == 0:
        dx = xp.zeros(g.input_shape, x.dtype)
    elif indices is None:
        dx = be.pool2d_backward(mode, dy, x, g)
    elif _offset_kernels(be):
        dx = be.pool2d_backward(mode, dy, x, g, indices=indices)
    else:
        dx = _scatter_offsets(xp, dy, indices, g)
    return _from_nhwc(xp, dx, data_format)


@accepts_any_array("x")
def max_pool2d(x, pool_size=2, strides=None, padding="valid", data_format="channels_last",
               backend=None, return_indices=False):
    """Max pooling per channel (Keras' arguments: ``strides`` defaults to ``pool_size``).

    A window's value is its first NaN if it holds one, else its maximum; padded cells are
    ignored. With ``return_indices`` it returns ``MaxPool2DWithIndices(y, indices)``:
    ``indices`` (uint8, y's shape and layout) holds each winner's offset ``i*kw + j`` in its
    window, for :func:`max_pool2d_backward`; windows may hold at most 256 cells. The CPU
    backends compute them in the pooling kernel, the others (cupy, reference) from x and y in
    array operations, one pass per window cell.
    """
    return _pool("max", x, pool_size, strides, padding, data_format, backend, return_indices)


@accepts_any_array("x")
def avg_pool2d(x, pool_size=2, strides=None, padding="valid", data_format="channels_last",
               backend=None):
    """Average pooling per channel; 'same' padding averages over the real cells only (Keras)."""
    return _pool("avg", x, pool_size, strides, padding, data_format, backend)


@accepts_any_array("dy", "x", "indices")
def max_pool2d_backward(dy, x, pool_size=2, strides=None, padding="valid",
                        data_format="channels_last", backend=None, indices=None):
    """Gradient of :func:`max_pool2d`: ``dy`` goes to each window's winning cell.

    With the ``indices`` of ``max_pool2d(..., return_indices=True)`` the winners are not looked
    up again: x's values are never read, only its shape and dtype (a broadcast view such as
    ``np.broadcast_to(np.float32(0), shape)`` will do). They must be uint8 of dy's shape with
    offsets below ``kh*kw``; an offset naming a padded cell sends its gradient nowhere.
    """
    return _pool_backward("max", dy, x, pool_size, strides, padding, data_format, backend,
                          indices)


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


# ------------------------------------------------------------------------- dense
@accepts_any_array("a", "b")
def matmul(a, b, backend=None):
    """``a @ b`` of 2-D ``a (M, K)`` and ``b (K, N)`` of one float dtype (views such as ``a.T``
    welcome). On the CPU backends the rows of ``a`` are split over fastconv's threads, each
    calling one-thread BLAS: OpenBLAS's own threads spin for about 0.1 s after each call it
    spreads over them, taking a core from the kernels that follow (bench/NOTES.md, step 27)."""
    xp = _array_module(a, b)
    a = _as_float_array(xp, a, "a", 2)
    b = _as_float_array(xp, b, "b", 2, a.dtype)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a {a.shape} @ b {b.shape}: the inner sizes differ")
    return _resolve_backend(xp, backend).matmul(a, b)


# ------------------------------------------------------------------------- elementwise
@accepts_any_array("dy", "y")
def relu_backward(dy, y, backend=None):
    """Gradient of ReLU from its output: ``dy * (y > 0)`` in one parallel pass."""
    xp = _array_module(dy, y)
    dy, y = xp.asarray(dy), xp.asarray(y)
    dtype = np.result_type(dy, y)
    dy = xp.ascontiguousarray(_as_float_array(xp, dy, "dy", dy.ndim).astype(dtype, copy=False))
    y = xp.ascontiguousarray(_as_float_array(xp, y, "y", y.ndim).astype(dtype, copy=False))
    if dy.shape != y.shape:
        raise ValueError(f"dy has shape {dy.shape} but y has {y.shape}")
    return _resolve_backend(xp, backend).relu_backward(dy, y)


@accepts_any_array("x")
def dropout(x, rate, seed, noise_shape=None, backend=None):
    """Inverted dropout with a stateless mask: each element of a mask of ``noise_shape`` (default
    ``x.shape``; 1s broadcast) is kept with probability ``1 - rate`` by a hash of ``(seed, its
    flat index)`` and scaled by ``1 / (1 - rate)``, the rest are 0; returns ``x * mask``.

    The mask depends on ``seed`` alone, the same on every backend (CPU and GPU), so the
    gradient is ``dropout(dy, rate, seed, noise_shape)`` and no mask need be stored.
    """
    xp = _array_module(x)
    x = xp.ascontiguousarray(_as_float_array(xp, xp.asarray(x), "x", np.ndim(x)))
    if not 0 <= rate < 1:
        raise ValueError(f"the dropout rate must lie in [0, 1), got {rate}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    shape = x.shape if noise_shape is None else tuple(noise_shape)
    if len(shape) != x.ndim or any(s not in (1, n) for s, n in zip(shape, x.shape)):
        raise ValueError(f"noise_shape {shape} does not broadcast to x's shape {x.shape}: each "
                         f"axis must be 1 or x's size")
    return _resolve_backend(xp, backend).dropout(x, rate, int(seed), shape)
