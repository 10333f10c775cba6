"""Plain-Python argument checks shared by the public wrappers of the Numba kernels.

Every wrapper calls these before its ``@njit`` kernel, so that no arguments Python can pass
make a kernel read or write out of bounds (``kernels/README.md``): a violation raises
``ValueError`` naming the operation and what disagrees. Nothing here imports Numba.
"""
import operator

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Geometry integers are bounded so that no index arithmetic in a kernel can overflow int64.
_INT_MAX = 1 << 30


def integers(op, minimum, **values):
    """Return ``values`` as a tuple of Python ints, each checked to lie in ``[minimum, 2**30]``."""
    out = []
    for name, value in values.items():
        try:
            v = operator.index(value)
        except TypeError:
            raise ValueError(f"{op}: {name} must be an integer, got {value!r}") from None
        if not minimum <= v <= _INT_MAX:
            raise ValueError(f"{op}: {name} must be an integer in [{minimum}, {_INT_MAX}], "
                             f"got {v}")
        out.append(v)
    return tuple(out)


def geometry(op, sh, sw, pt, pl, dil_h=1, dil_w=1):
    """Strides and dilations >= 1, top/left padding >= 0, as ints."""
    sh, sw, dil_h, dil_w = integers(op, 1, sh=sh, sw=sw, dil_h=dil_h, dil_w=dil_w)
    pt, pl = integers(op, 0, pt=pt, pl=pl)
    return sh, sw, pt, pl, dil_h, dil_w


def arrays(op, inputs, outputs, contiguous=True):
    """Check NumPy arrays of rank 4 (or as given), one float dtype, C-contiguous, outputs writable.

    ``inputs`` / ``outputs``: dicts ``name -> (array, ndim)``. Outputs must not share memory with
    any other argument. With ``contiguous=False`` only the last axis of rank-3 arrays must be
    contiguous (im2col's ``cols`` may be a row slice of a larger workspace).
    """
    named = list(inputs.items()) + list(outputs.items())
    dtype = None
    for name, (a, ndim) in named:
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{op}: {name} must be a NumPy array, got {type(a).__name__}")
        if a.ndim != ndim:
            raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {a.shape}")
        if a.dtype not in _FLOATS:
            raise ValueError(f"{op}: {name} must be float32 or float64, got {a.dtype}")
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            raise ValueError(f"{op}: all arrays must have one dtype, got {dtype} and {a.dtype} "
                             f"({name})")
        if contiguous or ndim != 3:
            if not a.flags.c_contiguous:
                raise ValueError(f"{op}: {name} must be C-contiguous")
        elif a.shape[2] > 1 and a.strides[2] != a.itemsize:
            raise ValueError(f"{op}: the last axis of {name} must be contiguous")
    for name, (a, _) in outputs.items():
        if not a.flags.writeable:
            raise ValueError(f"{op}: the output {name} is read-only")
        for other, (b, _) in named:
            if other != name and np.may_share_memory(a, b):
                raise ValueError(f"{op}: the output {name} overlaps {other}")


def shape(op, name, a, expected):
    """``a.shape == expected`` or a ValueError showing both."""
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} has shape {tuple(a.shape)}, expected {tuple(expected)}")


def output_size(op, axis, out, size, k, s, p, d, pool=False):
    """Check that ``out`` output cells along one axis agree with the input ``size``.

    ``out`` must be what ``floor((size + p + p_end - span) / s) + 1`` gives for some bottom/right
    padding ``p_end >= 0`` (span = ``d*(k-1) + 1``), i.e. no smaller than with ``p_end = 0``.
    For pooling (``pool=True``) every window must also hold at least one real cell.
    """
    span = d * (k - 1) + 1
    least = max((size + p - span) // s + 1, 1) if size else 0
    if out < least:
        raise ValueError(f"{op}: {out} output {axis} is too few for input {axis} {size} with "
                         f"kernel {k}, stride {s}, dilation {d}, padding {p} "
                         f"(at least {least}: the implied end padding would be negative)")
    if pool and out and (size < 1 or p >= span or (out - 1) * s - p >= size):
        raise ValueError(f"{op}: with input {axis} {size}, window {k}, stride {s} and padding "
                         f"{p}, {out} output {axis} would hold a window with no input cell")


def conv(op, act, w, out, act_name, out_name, sh, sw, pt, pl, dil_h, dil_w, groups):
    """A convolution's activation ``act`` (input side), ``w`` and ``out`` agree with the integers.

    Returns the geometry as ints: ``sh, sw, pt, pl, dil_h, dil_w, groups``.
    """
    sh, sw, pt, pl, dil_h, dil_w = geometry(op, sh, sw, pt, pl, dil_h, dil_w)
    (groups,) = integers(op, 1, groups=groups)
    n, h, wd, c = act.shape
    kh, kw, cg, o = w.shape
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: the filter must be at least 1x1, got w of shape {w.shape}")
    if c != cg * groups:
        raise ValueError(f"{op}: input channels {c} != groups {groups} x w.shape[2] {cg}")
    if o % groups:
        raise ValueError(f"{op}: output channels {o} are not divisible by groups {groups}")
    if out.shape[0] != n or out.shape[3] != o:
        raise ValueError(f"{op}: {out_name} has shape {out.shape}, expected "
                         f"({n}, OH, OW, {o}) for {act_name} {act.shape} and w {w.shape}")
    oh, ow = out.shape[1], out.shape[2]
    output_size(op, "rows", oh, h, kh, sh, pt, dil_h)
    output_size(op, "columns", ow, wd, kw, sw, pl, dil_w)
    return sh, sw, pt, pl, dil_h, dil_w, groups


def pointwise(op, act, w, out, act_name, out_name, sh, sw, groups):
    """A 1x1 convolution without padding: the shared conv checks, a 1x1 filter, and exactly the
    output that no padding gives. Returns ``sh, sw, groups``."""
    sh, sw, _, _, _, _, groups = conv(op, act, w, out, act_name, out_name, sh, sw, 0, 0, 1, 1,
                                      groups)
    if w.shape[:2] != (1, 1):
        raise ValueError(f"{op}: w must be a 1x1 filter, got shape {w.shape}")
    n, h, wd, _ = act.shape
    shape(op, out_name, out, (n, -(-h // sh), -(-wd // sw), w.shape[3]))
    return sh, sw, groups


def depthwise(op, act, w, out, act_name, out_name, sh, sw, pt, pl, dil_h, dil_w):
    """A depthwise convolution's ``act`` (input side), ``w`` and ``out`` agree with the integers.

    Returns ``(M, (sh, sw, pt, pl, dil_h, dil_w))``.
    """
    sh, sw, pt, pl, dil_h, dil_w = geometry(op, sh, sw, pt, pl, dil_h, dil_w)
    n, h, wd, c = act.shape
    kh, kw, one, cm = w.shape
    if kh < 1 or kw < 1 or one != 1:
        raise ValueError(f"{op}: w must have shape (KH >= 1, KW >= 1, 1, C*M), got {w.shape}")
    if c < 1 or cm < 1 or cm % c:
        raise ValueError(f"{op}: w.shape[3] = {cm} is not a positive multiple of the {c} "
                         f"channels of {act_name} {act.shape}")
    if out.shape[0] != n or out.shape[3] != cm:
        raise ValueError(f"{op}: {out_name} has shape {out.shape}, expected "
                         f"({n}, OH, OW, {cm}) for {act_name} {act.shape} and w {w.shape}")
    output_size(op, "rows", out.shape[1], h, kh, sh, pt, dil_h)
    output_size(op, "columns", out.shape[2], wd, kw, sw, pl, dil_w)
    return cm // c, (sh, sw, pt, pl, dil_h, dil_w)


def im2col(op, x, cols, r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w):
    """``x`` (or gx) and ``cols`` agree with the tile and the geometry.

    Returns the integers ``r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w``.
    """
    sh, sw, pt, pl, dil_h, dil_w = geometry(op, sh, sw, pt, pl, dil_h, dil_w)
    kh, kw, oh, ow = integers(op, 1, kh=kh, kw=kw, oh=oh, ow=ow)
    (r0,) = integers(op, 0, r0=r0)
    n, h, wd, c = x.shape
    g, m, k = cols.shape
    taps = kh * kw
    if k < taps or k % taps:
        raise ValueError(f"{op}: cols.shape[2] = {k} is not a positive multiple of kh*kw = {taps}")
    cg = k // taps
    if c != g * cg:
        raise ValueError(f"{op}: cols {cols.shape} holds {g} groups of {cg} channels, but the "
                         f"input has {c} channels")
    if m % ow:
        raise ValueError(f"{op}: cols.shape[1] = {m} is not a whole number of output rows of "
                         f"{ow} columns")
    if r0 + m // ow > n * oh:
        raise ValueError(f"{op}: the tile of {m // ow} output rows from row {r0} runs past the "
                         f"{n}*{oh} output rows of the batch")
    output_size(op, "rows", oh, h, kh, sh, pt, dil_h)
    output_size(op, "columns", ow, wd, kw, sw, pl, dil_w)
    return r0, kh, kw, oh, ow, sh, sw, pt, pl, dil_h, dil_w


def pool(op, x_shape, y_shape, x_name, y_name, kh, kw, sh, sw, pt, pl):
    """Shapes of ``x`` (input side) and ``y`` (output side) agree with the pool geometry.

    Returns the integers ``kh, kw, sh, sw, pt, pl``.
    """
    kh, kw = integers(op, 1, kh=kh, kw=kw)
    sh, sw, pt, pl, _, _ = geometry(op, sh, sw, pt, pl)
    n, h, wd, c = x_shape
    if y_shape[0] != n or y_shape[3] != c:
        raise ValueError(f"{op}: {y_name} has shape {tuple(y_shape)}, expected "
                         f"({n}, OH, OW, {c}) for {x_name} {tuple(x_shape)}")
    output_size(op, "rows", y_shape[1], h, kh, sh, pt, 1, pool=True)
    output_size(op, "columns", y_shape[2], wd, kw, sw, pl, 1, pool=True)
    return kh, kw, sh, sw, pt, pl


def window_offsets(op, idx, expected, cells, others, output):
    """``idx`` is a C-contiguous uint8 NumPy array of shape ``expected`` (pooling windows of at
    most 256 ``cells``, so each offset fits), overlapping none of ``others`` (name -> array),
    writable if an ``output``. Its values are never used as addresses: kernels only compare
    them with the offsets of real cells, so any byte is safe."""
    if not isinstance(idx, np.ndarray):
        raise ValueError(f"{op}: idx must be a NumPy array, got {type(idx).__name__}")
    if idx.dtype != np.uint8:
        raise ValueError(f"{op}: idx must be uint8, got {idx.dtype}")
    shape(op, "idx", idx, expected)
    if not idx.flags.c_contiguous:
        raise ValueError(f"{op}: idx must be C-contiguous")
    if cells > 256:
        raise ValueError(f"{op}: a window of {cells} cells has offsets beyond uint8 (at most 256)")
    if output and not idx.flags.writeable:
        raise ValueError(f"{op}: the output idx is read-only")
    for name, a in others.items():
        if np.may_share_memory(idx, a):
            raise ValueError(f"{op}: idx overlaps {name}")


def winograd_grid(op, act, m):
    """The ``ceil(OH/m) x ceil(OW/m)`` grid of ``m x m`` tiles over ``act`` ``(N, OH, OW, K)``."""
    if m not in (2, 3, 4):
        raise ValueError(f"{op}: m must be 2, 3 or 4, got {m!r}")
    return -(-act.shape[1] // m), -(-act.shape[2] // m)


def winograd_tiles(op, act, v, t0, m, th, tw, pt, pl):
    """``v`` ``((m+2)^2, T, channels of act)`` holds tiles ``[t0, t0 + T)`` of a ``th x tw`` grid
    per image of ``act``, m in (2, 4). Returns the integers ``t0, m, th, tw, pt, pl``."""
    (t0,) = integers(op, 0, t0=t0)
    m, th, tw = integers(op, 1, m=m, th=th, tw=tw)
    pt, pl = integers(op, -_INT_MAX, pt=pt, pl=pl)
    winograd_grid(op, act, m)
    shape(op, "the transform points", v, ((m + 2) ** 2, v.shape[1], act.shape[3]))
    if t0 + v.shape[1] > act.shape[0] * th * tw:
        raise ValueError(f"{op}: tiles [{t0}, {t0 + v.shape[1]}) run past the {act.shape[0]}"
                         f"*{th}*{tw} tiles of the batch")
    return t0, m, th, tw, pt, pl


def winograd_blocks(op, x, w, act, t0, T, m, pt, pl, block, panel_bytes=64):
    """Tiles ``[t0, t0 + T)`` of the ``ceil(OH/m) x ceil(OW/m)`` grid of ``act`` ``(N, OH, OW,
    K)`` from x ``(N, H, W, C)``, in blocks of ``block``, with weights ``w``: u ``((m+2)^2,
    ceil(K/P), C, P)`` (panels of P = ``panel_bytes``, the fused forward) or du ``((m+2)^2, C,
    K)`` (the weight gradient). Returns the integers ``t0, T, m, th, tw, pt, pl, block``."""
    (t0, T) = integers(op, 0, t0=t0, T=T)
    m, block = integers(op, 1, m=m, block=block)
    pt, pl = integers(op, -_INT_MAX, pt=pt, pl=pl)
    th, tw = winograd_grid(op, act, m)
    c, k, panel = x.shape[3], act.shape[3], panel_bytes // w.itemsize
    forward = w.ndim == 4
    shape(op, "u" if forward else "du", w,
          ((m + 2) ** 2, -(-k // panel), c, panel) if forward else ((m + 2) ** 2, c, k))
    shape(op, "y" if forward else "gy", act, (x.shape[0],) + act.shape[1:])
    if t0 + T > act.shape[0] * th * tw:
        raise ValueError(f"{op}: tiles [{t0}, {t0 + T}) run past the {act.shape[0]}*{th}*{tw} "
                         f"tiles of the batch")
    return t0, T, m, th, tw, pt, pl, block


def bias(op, b, y):
    """The optional bias a kernel adds to its output ``y[..., O]``: None, or ``b[O]`` of y's
    dtype, C-contiguous, not overlapping y."""
    if b is not None:
        arrays(op, {"b": (b, 1)}, {"y": (y, y.ndim)})
        shape(op, "b", b, (y.shape[-1],))


def bias_act(op, y, b):
    """``y`` (any rank >= 1, written in place) and its bias ``b[O]`` or None; returns O."""
    arrays(op, {}, {"y": (y, np.ndim(y))})
    if y.ndim < 1:
        raise ValueError(f"{op}: y must have at least one dimension")
    bias(op, b, y)
    return y.shape[-1]


def gradients(op, gy, x, w, gx, gw, gb):
    """The arrays of a kernel making both gradients: ``gy``, ``x``, ``w`` in; ``gx`` (None: not
    made; else x's shape), ``gw`` (w's shape) and ``gb`` (None, or gy's channels) out, none
    overlapping another argument. Returns whether ``gb`` is made."""
    outs = {"gw": (gw, 4)} if gx is None else {"gx": (gx, 4), "gw": (gw, 4)}
    if gb is not None:
        outs["gb"] = (gb, 1)
    arrays(op, {"gy": (gy, 4), "x": (x, 4), "w": (w, 4)}, outs)
    shape(op, "gw", gw, w.shape)
    if gx is not None:
        shape(op, "gx", gx, x.shape)
    return bias_grad(op, gb, gy)


def bias_grad(op, gb, gy):
    """The optional bias-gradient output ``gb[O]`` of a backward kernel reading ``gy[..., O]``:
    False when None, else checked (after ``gy``) and True."""
    if gb is None:
        return False
    arrays(op, {"gy": (gy, gy.ndim)}, {"gb": (gb, 1)})
    shape(op, "gb", gb, gy.shape[-1:])
    return True


def elementwise(op, inputs, outputs):
    """Arrays of any rank and one shape: ``inputs`` / ``outputs`` dicts ``name -> array``."""
    named = {**inputs, **outputs}
    arrays(op, {k: (a, np.ndim(a)) for k, a in inputs.items()},
           {k: (a, np.ndim(a)) for k, a in outputs.items()})
    first, *rest = named.items()
    for name, a in rest:
        shape(op, name, a, first[1].shape)


def dropout(op, seed, threshold):
    """The mask's seed (reduced mod 2**63, as the CUDA kernel takes it) and its threshold in
    [0, 2**32], as ints."""
    seed, threshold = operator.index(seed) % 2**63, operator.index(threshold)
    if not 0 <= threshold <= 1 << 32:
        raise ValueError(f"{op}: threshold must lie in [0, 2**32], got {threshold}")
    return seed, threshold
