"""fastconv's kernels inside PyTorch: custom operators with autograd, and drop-in modules.

Operators ``torch.ops.fastconv.{conv2d, max_pool2d, avg_pool2d}`` (``torch.library.custom_op``)
each have a fake implementation (shapes, for ``torch.compile`` / ``torch.export``) and autograd
through fastconv's own backward ops (``torch.ops.fastconv.conv2d_backward``, …). The functions
:func:`conv2d`, :func:`max_pool2d`, :func:`avg_pool2d` take ``torch.nn.functional``'s arguments;
:class:`Conv2d`, :class:`MaxPool2d`, :class:`AvgPool2d` are ``torch.nn``'s modules on these ops.

- Devices: CPU tensors run on the configured fastconv backend in their own memory
  (``Tensor.numpy()`` in, ``torch.from_numpy`` out); CUDA tensors run the CuPy kernels through
  DLPack, without a copy, on the tensor's GPU and PyTorch's current stream (untested on a GPU).
- Layout: an NCHW-contiguous tensor runs fastconv's channels_first path (copied to NHWC and
  back); a ``torch.channels_last`` tensor runs the NHWC kernels on its own memory and gives
  channels_last results. Weights are PyTorch's ``(out, in/groups, kh, kw)``.
- Padding: convolution takes an int, a pair, 'valid' or 'same'; PyTorch's 'same' (stride 1
  only) pads ``dilation*(kernel-1)`` per axis with the odd cell at the bottom/right, passed to
  the kernels as explicit per-side padding (at stride 1 this is also Keras' 'same').
  Pooling pads symmetrically; ``avg_pool2d`` follows PyTorch's ``count_include_pad``.
  Pooling's dilation, ceil_mode, return_indices and divisor_override are not supported.
- Threads: PyTorch and fastconv each keep an OpenMP pool; when other work holds the cores, give
  one of them a single thread (``torch.set_num_threads(1)``) or both can slow down ten-fold.
"""
import contextlib
from typing import Optional, Sequence

import numpy as np

try:
    import torch
except ImportError as err:
    raise ImportError("fastconv.interop.torch needs PyTorch: pip install 'fastconv[torch]' "
                      "(or a torch wheel for your platform)") from err
from torch import Tensor, nn

import fastconv
from fastconv._shapes import conv_output_size

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "Conv2d", "MaxPool2d", "AvgPool2d"]


# ------------------------------------------------------------------- tensors ↔ arrays
def _layout(x):
    """fastconv's data_format for ``x``: NHWC memory (and not also NCHW) → 'channels_last'."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    return "channels_first"


def _empty(x, shape):
    """An output of ``shape`` laid out as the kernels produce it for input ``x``."""
    fmt = torch.channels_last if _layout(x) == "channels_last" else torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)


def _array(t):
    """A NumPy (CPU) or CuPy (CUDA) view of ``t``, without a copy."""
    t = t.detach()
    if t.device.type == "cpu":
        return t.numpy()
    if t.device.type == "cuda":
        import cupy
        return cupy.from_dlpack(t)
    raise TypeError(f"fastconv runs CPU and CUDA tensors, got a tensor on {t.device}")


def _tensor(a):
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.from_dlpack(a)


def _act_array(t, fmt):
    return _array(t.permute(0, 2, 3, 1) if fmt == "channels_last" else t)


def _act_tensor(a, fmt):
    t = _tensor(a)
    return t.permute(0, 3, 1, 2) if fmt == "channels_last" else t


def _weight_array(w, fmt):
    return _array(w.permute(2, 3, 1, 0) if fmt == "channels_last" else w)


def _weight_tensor(a, fmt):
    t = _tensor(a)
    return t.permute(3, 2, 0, 1).contiguous() if fmt == "channels_last" else t


@contextlib.contextmanager
def _on_device(t):
    """CUDA: run CuPy on ``t``'s GPU and on PyTorch's current stream there."""
    if t.device.type != "cuda":
        yield
        return
    try:
        import cupy
    except ImportError as err:
        raise ImportError("fastconv runs CUDA tensors through CuPy: pip install "
                          "'fastconv[cuda]'") from err
    stream = torch.cuda.current_stream(t.device)
    with cupy.cuda.Device(t.device.index):
        from_external = getattr(cupy.cuda.Stream, "from_external", None)  # CuPy >= 14
        if from_external is not None and hasattr(stream, "__cuda_stream__"):
            external = from_external(stream)
        else:
            external = cupy.cuda.ExternalStream(stream.cuda_stream, t.device.index)
        with external:
            yield


def _conv_args(stride, padding, dilation, groups, fmt):
    t, b, l, r = padding
    return dict(strides=tuple(stride), padding=((t, b), (l, r)), dilation=tuple(dilation),
                groups=groups, data_format=fmt)


# ------------------------------------------------------------------- convolution ops
@torch.library.custom_op("fastconv::conv2d", mutates_args=())
def _conv2d_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int],
               padding: Sequence[int], dilation: Sequence[int], groups: int) -> Tensor:
    """Convolution of NCHW ``x`` with OIHW ``weight``; padding is (top, bottom, left, right)."""
    fmt = _layout(x)
    with _on_device(x):
        y = fastconv.conv2d(_act_array(x, fmt), _weight_array(weight, fmt),
                            None if bias is None else _array(bias),
                            **_conv_args(stride, padding, dilation, groups, fmt))
        return _act_tensor(y, fmt)


@_conv2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups):
    oh = conv_output_size(x.shape[2], weight.shape[2], stride[0], padding[0:2], dilation[0])
    ow = conv_output_size(x.shape[3], weight.shape[3], stride[1], padding[2:4], dilation[1])
    return _empty(x, (x.shape[0], weight.shape[0], oh, ow))


def _conv_grads(dy, x, weight, stride, padding, dilation, groups, need_input_grad):
    fmt = _layout(x)
    with _on_device(x):
        g = fastconv.conv2d_backward(_act_array(dy, fmt), _act_array(x, fmt),
                                     _weight_array(weight, fmt), need_input_grad=need_input_grad,
                                     **_conv_args(stride, padding, dilation, groups, fmt))
        dx = None if g.dx is None else _act_tensor(g.dx, fmt)
        return dx, _weight_tensor(g.dw, fmt), _tensor(g.db)


@torch.library.custom_op("fastconv::conv2d_backward", mutates_args=())
def _conv2d_backward_op(dy: Tensor, x: Tensor, weight: Tensor, stride: Sequence[int],
                        padding: Sequence[int], dilation: Sequence[int],
                        groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (input, weight, bias) of ``fastconv::conv2d``."""
    return _conv_grads(dy, x, weight, stride, padding, dilation, groups, True)


@torch.library.custom_op("fastconv::conv2d_weight_backward", mutates_args=())
def _conv2d_weight_backward_op(dy: Tensor, x: Tensor, weight: Tensor, stride: Sequence[int],
                               padding: Sequence[int], dilation: Sequence[int],
                               groups: int) -> tuple[Tensor, Tensor]:
    """Gradients (weight, bias) of ``fastconv::conv2d``, skipping the input's."""
    return _conv_grads(dy, x, weight, stride, padding, dilation, groups, False)[1:]


@_conv2d_backward_op.register_fake
def _(dy, x, weight, stride, padding, dilation, groups):
    return (_empty(x, x.shape),) + _weight_grads_fake(weight)


@_conv2d_weight_backward_op.register_fake
def _(dy, x, weight, stride, padding, dilation, groups):
    return _weight_grads_fake(weight)


def _weight_grads_fake(weight):
    return weight.new_empty(weight.shape), weight.new_empty(weight.shape[0])


def _conv_setup(ctx, inputs, output):
    x, weight, _, *ctx.args = inputs
    ctx.save_for_backward(x, weight)


def _conv_backward(ctx, dy):
    x, weight = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx = None
    if need_x:
        dx, dw, db = _conv2d_backward_op(dy, x, weight, *ctx.args)
    else:
        dw, db = _conv2d_weight_backward_op(dy, x, weight, *ctx.args)
    return dx, dw if need_w else None, db if need_b else None, None, None, None, None


_conv2d_op.register_autograd(_conv_backward, setup_context=_conv_setup)


# ------------------------------------------------------------------- pooling ops
def _pool_ops(mode):
    """Define ``fastconv::{mode}_pool2d`` and its backward op (fastconv's pooling semantics:
    padded cells are ignored, averages are over real cells); return the forward op."""
    forward = getattr(fastconv, f"{mode}_pool2d")
    backward = getattr(fastconv, f"{mode}_pool2d_backward")

    def pool_args(kernel_size, stride, padding, fmt):
        t, b, l, r = padding
        return dict(pool_size=tuple(kernel_size), strides=tuple(stride),
                    padding=((t, b), (l, r)), data_format=fmt)

    @torch.library.custom_op(f"fastconv::{mode}_pool2d", mutates_args=())
    def pool(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
             padding: Sequence[int]) -> Tensor:
        fmt = _layout(x)
        with _on_device(x):
            return _act_tensor(forward(_act_array(x, fmt),
                                       **pool_args(kernel_size, stride, padding, fmt)), fmt)

    @pool.register_fake
    def _(x, kernel_size, stride, padding):
        oh = conv_output_size(x.shape[2], kernel_size[0], stride[0], padding[0:2])
        ow = conv_output_size(x.shape[3], kernel_size[1], stride[1], padding[2:4])
        return _empty(x, (x.shape[0], x.shape[1], oh, ow))

    @torch.library.custom_op(f"fastconv::{mode}_pool2d_backward", mutates_args=())
    def pool_backward(dy: Tensor, x: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int]) -> Tensor:
        fmt = _layout(x)
        with _on_device(x):
            return _act_tensor(backward(_act_array(dy, fmt), _act_array(x, fmt),
                                        **pool_args(kernel_size, stride, padding, fmt)), fmt)

    @pool_backward.register_fake
    def _(dy, x, kernel_size, stride, padding):
        return _empty(x, x.shape)

    def setup(ctx, inputs, output):
        x, *ctx.args = inputs
        ctx.save_for_backward(x)

    def grad(ctx, dy):
        return pool_backward(dy, *ctx.saved_tensors, *ctx.args), None, None, None

    pool.register_autograd(grad, setup_context=setup)
    return pool


_max_pool2d_op = _pool_ops("max")
_avg_pool2d_op = _pool_ops("avg")


# ------------------------------------------------------------------- functional API
def _pair(value, name, minimum):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                 for v in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair


def _check(x, *others):
    for t in (x,) + others:
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"expected torch.Tensor arguments, got {type(t).__name__}")
    if x.dim() != 4:
        raise ValueError(f"input must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    devices = {t.device for t in (x,) + others if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")


def _conv_padding(padding, kernel_size, stride, dilation):
    """PyTorch's convolution ``padding`` (int, pair, 'valid', 'same') as (top, bottom, left,
    right); 'same' needs stride 1 and puts the odd cell of ``dilation*(kernel-1)`` bottom/right."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1, as in PyTorch; got {stride}")
        pads = []
        for k, d in zip(kernel_size, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if isinstance(padding, str):
        raise ValueError(f"padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.functional.conv2d`` on fastconv's kernels, differentiable."""
    _check(input, weight, bias)
    stride, dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    pads = _conv_padding(padding, weight.shape[2:], stride, dilation)
    return _conv2d_op(input, weight, bias, stride, pads, dilation, groups)


def _pool_geometry(kernel_size, stride, padding):
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride in (None, (), []) else _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    return kernel, stride, (ph, ph, pw, pw)


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """``torch.nn.functional.max_pool2d`` (no dilation, ceil_mode or indices), differentiable."""
    _check(input)
    return _max_pool2d_op(input, *_pool_geometry(kernel_size, stride, padding))


def avg_pool2d(input, kernel_size, stride=None, padding=0, count_include_pad=True):
    """``torch.nn.functional.avg_pool2d`` (no ceil_mode or divisor_override), differentiable.

    ``count_include_pad=True`` (PyTorch's default) divides by the whole window: fastconv's
    average over the real cells, scaled by the window's real fraction.
    """
    _check(input)
    kernel, stride, pads = _pool_geometry(kernel_size, stride, padding)
    y = _avg_pool2d_op(input, kernel, stride, pads)
    if not count_include_pad or not any(pads):
        return y
    rows = _real_fraction(input.shape[2], kernel[0], stride[0], pads[0], y.shape[2], y)
    cols = _real_fraction(input.shape[3], kernel[1], stride[1], pads[2], y.shape[3], y)
    return y * (rows[:, None] * cols[None, :])


def _real_fraction(n, k, s, p, out, like):
    """For each of ``out`` windows along an axis of ``n`` cells: real cells / ``k``."""
    start = torch.arange(out, device=like.device) * s - p
    return ((start + k).clamp(max=n) - start.clamp(min=0)).to(like.dtype) / k


# ------------------------------------------------------------------- modules
class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` on fastconv's kernels: the same arguments, parameters, default init
    and state_dict; ``padding_mode`` must be 'zeros'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f"fastconv's Conv2d pads with zeros only, got "
                             f"padding_mode={padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)

    def _conv_forward(self, input, weight, bias):
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on fastconv's kernels (dilation 1, no ceil_mode or indices)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        if _pair(dilation, "dilation", 1) != (1, 1) or return_indices or ceil_mode:
            raise ValueError("fastconv's MaxPool2d has no dilation, return_indices or ceil_mode")
        super().__init__(kernel_size, stride, padding)

    def forward(self, input):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding)


class AvgPool2d(nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` on fastconv's kernels (no ceil_mode or divisor_override)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        if ceil_mode or divisor_override is not None:
            raise ValueError("fastconv's AvgPool2d has no ceil_mode or divisor_override")
        super().__init__(kernel_size, stride, padding, count_include_pad=count_include_pad)

    def forward(self, input):
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                          self.count_include_pad)
