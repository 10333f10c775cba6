"""fastconv's conv2d as a JAX function, usable under ``jax.jit`` and differentiable.

The forward runs through ``jax.pure_callback`` with the output shape and dtype from fastconv's
shape rule; ``jax.custom_vjp`` makes the backward :func:`fastconv.conv2d_backward`, in another
callback. Callbacks run on the host (fastconv's configured CPU backend; JAX copies device arrays
there and back) and batch sequentially under ``jax.vmap``. Arguments, layouts and padding are
:func:`fastconv.conv2d`'s; its 'same' is Keras' and so also ``jax.lax``'s 'SAME'.
"""
import functools
from collections import namedtuple

import numpy as np

try:
    import jax
except ImportError as err:
    raise ImportError("fastconv.interop.jax needs JAX: pip install 'fastconv[jax]'") from err

import fastconv
from fastconv._shapes import conv_output_shape

_Config = namedtuple("_Config", "strides padding dilation groups data_format")


def conv2d(x, w, b=None, strides=1, padding="valid", dilation=1, groups=1,
           data_format="channels_last"):
    """:func:`fastconv.conv2d` on JAX arrays, under ``jax.jit`` and ``jax.grad`` alike."""
    config = _Config(_frozen(strides), _frozen(padding), _frozen(dilation), groups, data_format)
    return _conv(x, w, b, config)


def _frozen(value):
    """Lists to tuples, so that the configuration is hashable (static under jit)."""
    return tuple(map(_frozen, value)) if isinstance(value, (list, tuple)) else value


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv(x, w, b, config):
    return _forward(x, w, b, config)


def _forward(x, w, b, config):
    out = jax.ShapeDtypeStruct(_output_shape(x, w, b, config), x.dtype)
    return jax.pure_callback(functools.partial(_host_conv, config), out, x, w, b,
                             vmap_method="sequential")


def _fwd(x, w, b, config):
    return _forward(x, w, b, config), (x, w, b)


def _bwd(config, residuals, dy):
    x, w, b = residuals
    o = w.shape[0] if config.data_format == "channels_first" else w.shape[3]
    shapes = tuple(jax.ShapeDtypeStruct(s, x.dtype) for s in (x.shape, w.shape, (o,)))
    dx, dw, db = jax.pure_callback(functools.partial(_host_backward, config), shapes, dy, x, w,
                                   vmap_method="sequential")
    return dx, dw, None if b is None else db


_conv.defvjp(_fwd, _bwd)


def _host_conv(config, x, w, b):
    return fastconv.conv2d(x, w, b, **config._asdict())


def _host_backward(config, dy, x, w):
    return tuple(fastconv.conv2d_backward(dy, x, w, **config._asdict()))


def _output_shape(x, w, b, config):
    """Check what a trace can see (dtypes, ranks, channels) and give the output shape."""
    arrays = {"x": x, "w": w} if b is None else {"x": x, "w": w, "b": b}
    dtypes = {np.dtype(a.dtype) for a in arrays.values()}
    if len(dtypes) > 1 or dtypes - {np.dtype(np.float32), np.dtype(np.float64)}:
        raise TypeError(f"{', '.join(arrays)} must share one dtype, float32 or float64; got "
                        f"{[str(a.dtype) for a in arrays.values()]}")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must have 4 dimensions, got shapes {x.shape} and {w.shape}")
    first = config.data_format == "channels_first"
    c = x.shape[1] if first else x.shape[3]
    o, cg, kh, kw = w.shape if first else (w.shape[3], w.shape[2], w.shape[0], w.shape[1])
    groups = config.groups
    if (not isinstance(groups, int) or groups < 1 or c != cg * groups or o % groups
            or (b is not None and b.shape != (o,))):
        raise ValueError(f"w {w.shape} (and b) do not fit x {x.shape} with groups={groups!r} "
                         f"in {config.data_format}")
    return conv_output_shape(x.shape, (kh, kw), o, config.strides, config.padding,
                             config.dilation, config.data_format)
