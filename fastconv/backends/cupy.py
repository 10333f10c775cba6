"""The CUDA backend: the kernels of ``kernels/cuda/*.cu`` run through CuPy, behind the contract.

The ``.cu`` files ship as package data of ``fastconv.kernels.cuda``; each is compiled by CuPy
(NVRTC) into one ``cupy.RawModule`` per process and device, on first use. Kernels are named
``<file>_<function>_<f32|f64>``, take device pointers and 64-bit integers, loop grid-stride and
run on the current stream, with grids sized from the work and from the device's multiprocessor
count, threads per multiprocessor and grid limit. The functions below keep the contract's
signatures and checks (``kernels/README.md``): shapes, dtypes, contiguity and device are checked
before any launch, so no call can make a kernel read or write out of bounds.
"""
import operator
from importlib import resources
from types import SimpleNamespace

import numpy as np

from ._native import NativeBackend

try:
    import cupy
except ImportError as exc:
    raise ImportError(
        "the 'cupy' backend needs CuPy and a CUDA GPU: install the CuPy wheel matching your CUDA "
        "toolkit, e.g. `pip install cupy-cuda12x` (or `pip install fastconv[cuda]`)") from exc
try:
    _GPUS = cupy.cuda.runtime.getDeviceCount()
except cupy.cuda.runtime.CUDARuntimeError as exc:
    raise ImportError(f"the 'cupy' backend needs a CUDA GPU; CuPy cannot reach one: {exc}") from exc
if _GPUS == 0:
    raise ImportError("the 'cupy' backend needs a CUDA GPU; CuPy sees none")

THREADS = 256       # threads per block of every kernel (conv_direct_forward_tiled requires 256)
TILE = 64           # conv_direct_forward_tiled: output positions x output channels per block
MIN_TILED_OG = 32   # use the tiled forward when a group has at least this many output channels
_MAX = 2**31 - 1    # bound on every dimension and integer argument
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

_modules = {}    # (device id, file) -> cupy.RawModule
_functions = {}  # (device id, kernel name) -> cupy.RawKernel
_limits = {}     # device id -> (threads resident on the whole device, grid-size cap in blocks)


# ---------------------------------------------------------------- modules and launches
def _function(file, name):
    dev = cupy.cuda.runtime.getDevice()
    fn = _functions.get((dev, name))
    if fn is None:
        module = _modules.get((dev, file))
        if module is None:
            source = resources.files("fastconv.kernels.cuda").joinpath(file + ".cu").read_text()
            module = _modules.setdefault((dev, file), cupy.RawModule(code=source))
        fn = _functions.setdefault((dev, name), module.get_function(name))
    return fn


def _device_limits():
    dev = cupy.cuda.runtime.getDevice()
    limits = _limits.get(dev)
    if limits is None:
        p = cupy.cuda.runtime.getDeviceProperties(dev)
        resident = p["multiProcessorCount"] * p["maxThreadsPerMultiProcessor"]
        limits = _limits.setdefault(dev, (resident, max(1, min(p["maxGridSize"][0],
                                                               8 * resident // THREADS))))
    return limits


def _cdiv(a, b):
    return -(-a // b)


def _launch(file, name, blocks, *args):
    """Launch ``<file>_<name>`` on the current stream with ``blocks`` blocks (capped; the kernels
    loop grid-stride); integers are passed as 64-bit."""
    if blocks > 0:
        args = tuple(a if isinstance(a, cupy.ndarray) else np.int64(a) for a in args)
        _function(file, f"{file}_{name}")((min(blocks, _device_limits()[1]),), (THREADS,), args)


def _launch_elements(file, name, total, *args):
    """Launch a kernel that runs one grid-stride iteration per element of ``total``."""
    _launch(file, name, _cdiv(total, THREADS), *args)


# ---------------------------------------------------------------- argument checks
def _int(value, name, low):
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not low <= value <= _MAX:
        raise ValueError(f"{name} must be in [{low}, 2**31), got {value}")
    return value


def _suffix(**arrays):
    """Check that the arrays are CuPy arrays on the current device sharing float32 or float64;
    return the kernels' dtype suffix."""
    dev = cupy.cuda.runtime.getDevice()
    for name, a in arrays.items():
        if not isinstance(a, cupy.ndarray):
            raise ValueError(f"{name} must be a cupy.ndarray, got {type(a).__name__}")
        if a.device.id != dev:
            raise ValueError(f"{name} is on device {a.device.id}, the current device is {dev}")
        if any(n > _MAX for n in a.shape):
            raise ValueError(f"{name} has a dimension of 2**31 or more: {a.shape}")
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) != 1 or not dtypes <= _SUFFIX.keys():
        raise ValueError("arrays must share one dtype, float32 or float64; got "
                         + ", ".join(f"{k} {a.dtype}" for k, a in arrays.items()))
    return _SUFFIX[dtypes.pop()]


def _shape(name, a, ndim=4):
    if a.ndim != ndim or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {ndim}-d array, got shape {a.shape} "
                         f"strides {a.strides}")
    return a.shape


def _geometry(x_shape, n, oh, ow, kh, kw, sh, sw, pt, pl, dil_h, dil_w, pool=False):
    """Check the window integers and that the output grid ``(n, oh, ow)`` follows from the input
    ``x_shape`` (NHWC) for some bottom/right padding >= 0; return the kernels' 14 geometry
    integers ``N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw``."""
    kh, kw, sh, sw, dil_h, dil_w = (_int(v, k, 1) for v, k in zip(
        (kh, kw, sh, sw, dil_h, dil_w), ("kh", "kw", "sh", "sw", "dil_h", "dil_w")))
    pt, pl = _int(pt, "pt", 0), _int(pl, "pl", 0)
    if n != x_shape[0]:
        raise ValueError(f"batch sizes differ: input {x_shape[0]}, output {n}")
    for size, out, k, s, p, d, axis in ((x_shape[1], oh, kh, sh, pt, dil_h, "height"),
                                        (x_shape[2], ow, kw, sw, pl, dil_w, "width")):
        span = d * (k - 1) + 1
        if out < 1 or out * s + span <= size + p:
            raise ValueError(f"output {axis} {out} does not follow from input {axis} {size}, "
                             f"window {span}, stride {s}, top/left padding {p}")
        if pool and (p >= k or (out - 1) * s - p >= size):
            raise ValueError(f"a pooling window along the {axis} holds padding only "
                             f"(input {size}, window {k}, stride {s}, padding {p}, output {out})")
    return (*x_shape, oh, ow, kh, kw, sh, sw, pt, pl, dil_h, dil_w)


def _conv_channels(x_shape, w_shape, y_shape, groups):
    """Check x[..., C], w[KH, KW, C/groups, O], y[..., O]; return ``(O, groups)``."""
    groups = _int(groups, "groups", 1)
    c, o = x_shape[3], w_shape[3]
    if c % groups or o % groups or w_shape[2] != c // groups or y_shape[3] != o:
        raise ValueError(f"channels disagree: x {x_shape}, w {w_shape} (HWIO), output {y_shape}, "
                         f"groups {groups}")
    return o, groups


def _depth_multiplier(x_shape, w_shape, y_shape):
    """Check x[..., C], w[KH, KW, 1, C*M], y[..., C*M]; return M."""
    c, o = x_shape[3], w_shape[3]
    if c < 1 or w_shape[2] != 1 or o % c or y_shape[3] != o:
        raise ValueError(f"channels disagree: x {x_shape}, depthwise w {w_shape} (KH, KW, 1, C*M), "
                         f"output {y_shape}")
    return o // c


def _weight_gradient(file, suffix, gy, x, gw, geom, *extra):
    """Launch ``<file>_backward_weight`` over chunks of output rows, enough to fill the device,
    then add the chunks with ``<file>_sum_partials`` (deterministic, no atomics)."""
    rows, nw = geom[0] * geom[4], gw.size
    if rows == 0:
        gw.fill(0)
        return
    target = 2 * _device_limits()[0]
    chunk = _cdiv(rows, min(rows, _cdiv(target, max(nw, 1))))
    chunks = _cdiv(rows, chunk)
    part = gw if chunks == 1 else cupy.empty(chunks * nw, gw.dtype)
    _launch_elements(file, f"backward_weight_{suffix}", chunks * nw, gy, x, part, *geom, *extra,
                     chunk)
    if chunks > 1:
        _launch_elements(file, f"sum_partials_{suffix}", nw, part, gw, nw, chunks)


# ---------------------------------------------------------------- conv_direct
def _conv_forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, groups, b=None, relu=False):
    s = _suffix(x=x, w=w, y=y) if b is None else _suffix(x=x, w=w, y=y, b=b)
    xs, ws, ys = _shape("x", x), _shape("w", w), _shape("y", y)
    o, groups = _conv_channels(xs, ws, ys, groups)
    geom = _geometry(xs, ys[0], ys[1], ys[2], ws[0], ws[1], sh, sw, pt, pl, dil_h, dil_w)
    og = o // groups
    if og >= MIN_TILED_OG:
        tiles = _cdiv(ys[0] * ys[1] * ys[2], TILE) * _cdiv(og, TILE) * groups
        _launch("conv_direct", f"forward_tiled_{s}", tiles, x, w, y, *geom, o, groups)
    else:
        _launch_elements("conv_direct", f"forward_{s}", y.size, x, w, y, *geom, o, groups)
    bias_act(y, b, relu)


def _conv_backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups):
    s = _suffix(gy=gy, w=w, gx=gx)
    gys, ws, gxs = _shape("gy", gy), _shape("w", w), _shape("gx", gx)
    o, groups = _conv_channels(gxs, ws, gys, groups)
    geom = _geometry(gxs, gys[0], gys[1], gys[2], ws[0], ws[1], sh, sw, pt, pl, dil_h, dil_w)
    _launch_elements("conv_direct", f"backward_input_{s}", gx.size, gy, w, gx, *geom, o, groups)


def _conv_backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=None):
    s = _suffix(gy=gy, x=x, gw=gw)
    gys, xs, gws = _shape("gy", gy), _shape("x", x), _shape("gw", gw)
    o, groups = _conv_channels(xs, gws, gys, groups)
    geom = _geometry(xs, gys[0], gys[1], gys[2], gws[0], gws[1], sh, sw, pt, pl, dil_h, dil_w)
    _weight_gradient("conv_direct", s, gy, x, gw, geom, o, groups)
    _bias_grad(gy, gb)


def _conv_backward(gy, x, w, gx, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb=None):
    if gx is not None:
        _conv_backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups)
    _conv_backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w, groups, gb)


def _bias_grad(gy, gb):
    """``gb`` (None: skipped) = gy summed over its pixels: the CPU kernels' fused bias gradient,
    as a reduction here."""
    if gb is not None:
        gb[...] = gy.sum(axis=(0, 1, 2))


# ---------------------------------------------------------------- im2col
def _tile(x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    """Check an im2col row tile; return ``(suffix, geom, Cg, r0, rows, group stride)``."""
    s = _suffix(x=x, cols=cols)
    xs = _shape("x", x)
    oh, ow, r0 = _int(oh, "oh", 1), _int(ow, "ow", 1), _int(r0, "r0", 0)
    geom = _geometry(xs, xs[0], oh, ow, kh, kw, sh, sw, pt, pl, dil_h, dil_w)
    if cols.ndim != 3:
        raise ValueError(f"cols must be 3-d (G, rows*OW, KH*KW*Cg), got shape {cols.shape}")
    g, m, k = cols.shape
    cg = k // (geom[6] * geom[7])
    rows = m // ow
    if (cg < 1 or k != cg * geom[6] * geom[7] or xs[3] % cg or g != xs[3] // cg or m != rows * ow
            or r0 + rows > xs[0] * oh):
        raise ValueError(f"cols {cols.shape} is not a row tile (G, rows*OW, KH*KW*Cg) at output "
                         f"row {r0} of x {xs} with OH={oh}, OW={ow}, window {geom[6]}x{geom[7]}")
    item = cols.itemsize
    gstride = cols.strides[0] // item if g > 1 else 0
    if ((m > 1 and cols.strides[1] != k * item) or (k > 1 and cols.strides[2] != item)
            or (g > 1 and (cols.strides[0] % item or gstride < m * k))):
        raise ValueError(f"cols must be C-contiguous within each group and its groups must not "
                         f"overlap; got strides {cols.strides}")
    return s, geom, cg, r0, rows, gstride


def _im2col(x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    s, geom, cg, r0, rows, gstride = _tile(x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h,
                                           dil_w)
    _launch_elements("im2col", f"im2col_{s}", cols.size, x, cols, *geom, cg, r0, rows, gstride)


def _col2im(cols, gx, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    s, geom, cg, r0, rows, gstride = _tile(gx, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h,
                                           dil_w)
    _, h, w, c, oh, _, kh, _, sh, _, pt, _, dil_h, _ = geom
    if rows == 0:
        return
    # The input rows (flattened n*H + ih) the tile's output rows r0 .. r0+rows-1 can reach.
    (n0, oh0), (n1, oh1) = divmod(r0, oh), divmod(r0 + rows - 1, oh)
    row0 = n0 * h + min(h, max(0, oh0 * sh - pt))
    row1 = n1 * h + min(h, max(0, oh1 * sh - pt + dil_h * (kh - 1) + 1))
    if row1 > row0:
        _launch_elements("im2col", f"col2im_{s}", (row1 - row0) * w * c, cols, gx, *geom, cg, r0,
                         rows, gstride, row0, row1 - row0)


# ---------------------------------------------------------------- depthwise
def _depthwise_forward(x, w, y, sh, sw, pt, pl, dil_h, dil_w, b=None):
    s = _suffix(x=x, w=w, y=y) if b is None else _suffix(x=x, w=w, y=y, b=b)
    xs, ws, ys = _shape("x", x), _shape("w", w), _shape("y", y)
    m = _depth_multiplier(xs, ws, ys)
    if b is not None and b.shape != (ys[3],):
        raise ValueError(f"b must have shape ({ys[3]},), got {b.shape}")
    geom = _geometry(xs, ys[0], ys[1], ys[2], ws[0], ws[1], sh, sw, pt, pl, dil_h, dil_w)
    _launch_elements("depthwise", f"forward_{s}", y.size, x, w, y, *geom, m)
    bias_act(y, b, False)


def _depthwise_backward(gy, x, w, gx, gw, sh, sw, pt, pl, dil_h, dil_w, gb=None):
    """The CPU kernels' one-pass contract: gx (None: skipped), gw and gb (None: skipped)."""
    if gx is not None:
        _depthwise_backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w)
    _depthwise_backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w)
    _bias_grad(gy, gb)


def _depthwise_backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w):
    s = _suffix(gy=gy, w=w, gx=gx)
    gys, ws, gxs = _shape("gy", gy), _shape("w", w), _shape("gx", gx)
    m = _depth_multiplier(gxs, ws, gys)
    geom = _geometry(gxs, gys[0], gys[1], gys[2], ws[0], ws[1], sh, sw, pt, pl, dil_h, dil_w)
    _launch_elements("depthwise", f"backward_input_{s}", gx.size, gy, w, gx, *geom, m)


def _depthwise_backward_weight(gy, x, gw, sh, sw, pt, pl, dil_h, dil_w):
    s = _suffix(gy=gy, x=x, gw=gw)
    gys, xs, gws = _shape("gy", gy), _shape("x", x), _shape("gw", gw)
    m = _depth_multiplier(xs, gws, gys)
    geom = _geometry(xs, gys[0], gys[1], gys[2], gws[0], gws[1], sh, sw, pt, pl, dil_h, dil_w)
    _weight_gradient("depthwise", s, gy, x, gw, geom, m)


# ---------------------------------------------------------------- pool
def _pool(x_name, x, y_name, y, kh, kw, sh, sw, pt, pl, **others):
    """Check a pooling call: x and y (and ``others``, shaped like x) NHWC with equal channels;
    return ``(suffix, geom)``."""
    s = _suffix(**{x_name: x, y_name: y}, **others)
    xs, ys = _shape(x_name, x), _shape(y_name, y)
    for name, a in others.items():
        if _shape(name, a) != xs:
            raise ValueError(f"{name} {a.shape} and {x_name} {xs} must have one shape")
    if ys[3] != xs[3]:
        raise ValueError(f"channels differ: {x_name} {xs}, {y_name} {ys}")
    geom = _geometry(xs, ys[0], ys[1], ys[2], kh, kw, sh, sw, pt, pl, 1, 1, pool=True)
    if geom[6] * geom[7] > _MAX:
        raise ValueError(f"pooling window {geom[6]}x{geom[7]} has 2**31 cells or more")
    return s, geom


def _max_forward(x, y, kh, kw, sh, sw, pt, pl):
    s, geom = _pool("x", x, "y", y, kh, kw, sh, sw, pt, pl)
    _launch_elements("pool", f"max_forward_{s}", y.size, x, y, *geom)


def _max_backward(x, gy, gx, kh, kw, sh, sw, pt, pl):
    s, geom = _pool("x", x, "gy", gy, kh, kw, sh, sw, pt, pl, gx=gx)
    winners = cupy.empty(gy.shape, np.int32)
    _launch_elements("pool", f"max_argmax_{s}", gy.size, x, winners, *geom)
    _launch_elements("pool", f"max_backward_{s}", gx.size, winners, gy, gx, *geom)


def _avg_forward(x, y, kh, kw, sh, sw, pt, pl):
    s, geom = _pool("x", x, "y", y, kh, kw, sh, sw, pt, pl)
    _launch_elements("pool", f"avg_forward_{s}", y.size, x, y, *geom)


def _avg_backward(gy, gx, kh, kw, sh, sw, pt, pl):
    s, geom = _pool("gx", gx, "gy", gy, kh, kw, sh, sw, pt, pl)
    _launch_elements("pool", f"avg_backward_{s}", gx.size, gy, gx, *geom)


# ---------------------------------------------------------------- elementwise
def bias_act(y, b, relu):
    """In place over ``y[..., O]`` (C-contiguous): ``y += b`` (``b[O]``; skipped when ``b`` is
    None), then ReLU when ``relu`` (NaN stays NaN)."""
    s = _suffix(y=y) if b is None else _suffix(y=y, b=b)
    if y.ndim < 1 or not y.flags.c_contiguous:
        raise ValueError(f"y must be a C-contiguous array of 1 or more dimensions, got {y.shape}")
    if b is not None and b.shape != y.shape[-1:]:
        raise ValueError(f"b must have shape {y.shape[-1:]}, got {b.shape}")
    if b is not None or relu:
        _launch_elements("epilogue", f"bias_act_{s}", y.size, y, y if b is None else b, y.size,
                         y.shape[-1], b is not None, bool(relu))


def relu_backward(gy, y, gx):
    """``gx = gy * (y > 0)`` (overwritten)."""
    _suffix(gy=gy, y=y, gx=gx)
    if not gy.shape == y.shape == gx.shape:
        raise ValueError(f"gy, y and gx must have one shape, got {gy.shape}, {y.shape}, {gx.shape}")
    cupy.multiply(gy, y > 0, out=gx)


def dropout(x, out, seed, threshold, scale):
    """``out = x * mask``: ``scale`` where the hash of (seed, flat index) keeps the element (its
    top 32 bits >= ``threshold`` = rate * 2**32), else 0 (overwritten)."""
    s = _suffix(x=x, out=out)
    if x.shape != out.shape or not (x.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError(f"x and out must be C-contiguous of one shape, got {x.shape}, {out.shape}")
    if not 0 <= threshold <= 1 << 32:
        raise ValueError(f"threshold must lie in [0, 2**32], got {threshold}")
    _launch_elements("dropout", f"keep_{s}", out.size, out, out.size,
                     operator.index(seed) % 2**63, threshold)
    out *= scale
    out *= x


kernels = SimpleNamespace(
    conv_direct=SimpleNamespace(forward=_conv_forward, backward=_conv_backward,
                                backward_input=_conv_backward_input,
                                backward_weight=_conv_backward_weight),
    im2col=SimpleNamespace(im2col=_im2col, col2im=_col2im),
    depthwise=SimpleNamespace(forward=_depthwise_forward, backward=_depthwise_backward),
    pool=SimpleNamespace(max_forward=_max_forward, max_backward=_max_backward,
                         avg_forward=_avg_forward, avg_backward=_avg_backward),
    epilogue=SimpleNamespace(bias_act=bias_act, relu_backward=relu_backward, dropout=dropout),
)

BACKEND = NativeBackend("cupy", kernels, cupy, tile_bytes=256 << 20)  # im2col workspace: 256 MiB
