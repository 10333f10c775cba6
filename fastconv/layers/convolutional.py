"""Conv2D (with groups), DepthwiseConv2D, SeparableConv2D and ZeroPadding2D.

Kernels are kept in Keras' layout whatever the data format — Conv2D ``(kh, kw, in/groups,
filters)``, depthwise ``(kh, kw, in, depth_multiplier)`` — so saved weights are Keras'; one
pair of helpers (:func:`_conv`, :func:`_conv_backward`) runs every convolution here on
:mod:`fastconv.functional`.
"""
import math

import numpy as np

from fastconv import activations, backend, functional as F
from fastconv._shapes import _positive_pair, check_data_format, conv_output_shape
from fastconv.layers.base import ActivationMixin, Layer


def _padding(padding):
    return padding.lower() if isinstance(padding, str) else padding


def _to_format(w, data_format):
    """Keras' HWIO kernel → what :mod:`fastconv.functional` takes for ``data_format``."""
    return w if data_format == "channels_last" else w.transpose(3, 2, 0, 1)


def _conv(layer, x, kernel, groups, strides=None, padding=None, dilation=None, bias=None,
          activation=None):
    return F.conv2d(x, _to_format(kernel, layer.data_format), bias,
                    layer.strides if strides is None else strides,
                    layer.padding if padding is None else padding,
                    layer.dilation_rate if dilation is None else dilation, groups,
                    layer.data_format, layer.algorithm, activation=activation)


def _conv_backward(layer, dz, x, kernel, groups, need_input_grad, strides=None, padding=None,
                   dilation=None):
    """``(dx, dkernel in Keras' layout, dbias)``."""
    g = F.conv2d_backward(dz, x, _to_format(kernel, layer.data_format),
                          layer.strides if strides is None else strides,
                          layer.padding if padding is None else padding,
                          layer.dilation_rate if dilation is None else dilation, groups,
                          layer.data_format, layer.algorithm, need_input_grad=need_input_grad)
    dw = g.dw if layer.data_format == "channels_last" else g.dw.transpose(2, 3, 1, 0)
    return g.dx, dw, g.db


def _channels(shape, data_format):
    return shape[-1] if data_format == "channels_last" else shape[0]


class _Conv(ActivationMixin, Layer):
    """What every convolution layer shares: window arguments, activation, bias, config."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, bias_initializer="zeros",
                 algorithm="auto", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _positive_pair(kernel_size, "kernel_size")
        self.strides = _positive_pair(strides, "strides")
        self.dilation_rate = _positive_pair(dilation_rate, "dilation_rate")
        self.padding = _padding(padding)
        self.data_format = data_format or backend.image_data_format()
        check_data_format(self.data_format)
        self.activation = activations.get(activation)
        self.use_bias, self.bias_initializer, self.algorithm = use_bias, bias_initializer, algorithm

    def _out_channels(self, in_channels):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes images (H, W, C) or "
                             f"(C, H, W), got input shape {input_shape}")
        return conv_output_shape(input_shape, self.kernel_size,
                                 self._out_channels(_channels(input_shape, self.data_format)),
                                 self.strides, self.padding, self.dilation_rate, self.data_format)

    def _add_bias(self, n):
        self.bias = self.add_weight("bias", (n,), self.bias_initializer) if self.use_bias else None

    def _fused(self):
        """The activation the convolution applies in its epilogue, with the bias (else None)."""
        return self.activation.name if self.activation.name in F.FUSED_ACTIVATIONS else None

    def _finish(self, z, x, **extra):
        """``z``: the convolution's output, its epilogue (:meth:`_fused`) applied."""
        y = z if self._fused() else self.activation.forward(z)
        return y, {"x": x, "y": y, **extra}

    def _bias_grad(self, db):
        if self.bias is not None:
            self.bias.add_grad(db)

    def _window_flops(self, output_shape, in_per_group):
        """2 · outputs · taps · inputs per output (a multiply-add per tap and input)."""
        return 2 * math.prod(output_shape) * math.prod(self.kernel_size) * in_per_group

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "activation": self.activation.name,
                "use_bias": self.use_bias, "bias_initializer": self.bias_initializer,
                "algorithm": self.algorithm}


class Conv2D(_Conv):
    """2-D convolution layer (Keras' arguments; ``groups`` splits the channels as in ResNeXt)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, **kwargs)
        if not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        if not isinstance(groups, (int, np.integer)) or groups < 1 or filters % groups:
            raise ValueError(f"groups must be a positive int dividing filters={filters}, "
                             f"got {groups!r}")
        self.filters, self.groups, self.kernel_initializer = filters, groups, kernel_initializer

    def _out_channels(self, in_channels):
        return self.filters

    def build(self, input_shape):
        c = _channels(input_shape, self.data_format)
        if c % self.groups:
            raise ValueError(f"{self.name}: {c} input channels do not split into "
                             f"groups={self.groups}")
        self.kernel = self.add_weight("kernel", self.kernel_size + (c // self.groups,
                                                                    self.filters),
                                      self.kernel_initializer)
        self._add_bias(self.filters)

    def forward(self, x, training=False):
        bias = None if self.bias is None else self.bias.value
        return self._finish(_conv(self, x, self.kernel.value, self.groups, bias=bias,
                                  activation=self._fused()), x)

    def backward_preactivation(self, dz, ctx, need_input_grad=True):
        dx, dw, db = _conv_backward(self, dz, ctx["x"], self.kernel.value, self.groups,
                                    need_input_grad)
        self.kernel.add_grad(dw)
        self._bias_grad(db)
        return dx

    def flops(self, input_shape, output_shape):
        return self._window_flops(output_shape,
                                  _channels(input_shape, self.data_format) // self.groups)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups,
                "kernel_initializer": self.kernel_initializer}


class DepthwiseConv2D(_Conv):
    """One filter bank per input channel (``depth_multiplier`` outputs each)."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, **kwargs)
        self.depth_multiplier, self.depthwise_initializer = depth_multiplier, depthwise_initializer

    def _out_channels(self, in_channels):
        return in_channels * self.depth_multiplier

    def build(self, input_shape):
        c = _channels(input_shape, self.data_format)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (c, self.depth_multiplier),
            self.depthwise_initializer)
        self._add_bias(c * self.depth_multiplier)

    def _grouped(self):
        """Keras' (kh, kw, C, m) kernel as a grouped HWIO kernel (kh, kw, 1, C·m): a reshape."""
        kh, kw, c, m = self.depthwise_kernel.shape
        return self.depthwise_kernel.value.reshape(kh, kw, 1, c * m), c

    def forward(self, x, training=False):
        w, c = self._grouped()
        bias = None if self.bias is None else self.bias.value
        return self._finish(_conv(self, x, w, c, bias=bias, activation=self._fused()), x)

    def backward_preactivation(self, dz, ctx, need_input_grad=True):
        w, c = self._grouped()
        dx, dw, db = _conv_backward(self, dz, ctx["x"], w, c, need_input_grad)
        self.depthwise_kernel.add_grad(dw.reshape(self.depthwise_kernel.shape))
        self._bias_grad(db)
        return dx

    def flops(self, input_shape, output_shape):
        return self._window_flops(output_shape, 1)

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": self.depthwise_initializer}


class SeparableConv2D(DepthwiseConv2D):
    """Depthwise convolution, then a 1x1 convolution to ``filters`` channels, one bias."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, **kwargs)
        self.filters, self.pointwise_initializer = filters, pointwise_initializer

    def _out_channels(self, in_channels):
        return self.filters

    def build(self, input_shape):
        c = _channels(input_shape, self.data_format)
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", self.kernel_size + (c, m),
                                                self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, c * m, self.filters),
                                                self.pointwise_initializer)
        self._add_bias(self.filters)

    def forward(self, x, training=False):
        w, c = self._grouped()
        h = _conv(self, x, w, c)
        bias = None if self.bias is None else self.bias.value
        z = _conv(self, h, self.pointwise_kernel.value, 1, 1, "valid", 1, bias, self._fused())
        return self._finish(z, x, h=h)

    def backward_preactivation(self, dz, ctx, need_input_grad=True):
        dh, dpw, db = _conv_backward(self, dz, ctx["h"], self.pointwise_kernel.value, 1, True,
                                     1, "valid", 1)
        self.pointwise_kernel.add_grad(dpw)
        self._bias_grad(db)
        w, c = self._grouped()
        dx, ddw, _ = _conv_backward(self, dh, ctx["x"], w, c, need_input_grad)
        self.depthwise_kernel.add_grad(ddw.reshape(self.depthwise_kernel.shape))
        return dx

    def flops(self, input_shape, output_shape):
        c = _channels(input_shape, self.data_format) * self.depth_multiplier
        mid = conv_output_shape(input_shape, self.kernel_size, c, self.strides, self.padding,
                                self.dilation_rate, self.data_format)
        return self._window_flops(mid, 1) + 2 * math.prod(output_shape) * c

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": self.pointwise_initializer}


class ZeroPadding2D(Layer):
    """Pad rows and columns with zeros: an int, ``(rows, cols)`` or ``((top, bottom), (left,
    right))``."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, (int, np.integer)):
            padding = ((padding, padding), (padding, padding))
        padding = tuple((p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in padding)
        if len(padding) != 2 or any(len(p) != 2 or min(p) < 0 for p in padding):
            raise ValueError(f"padding must be an int, a pair or a pair of pairs of "
                             f"non-negative ints, got {padding!r}")
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)
        self.data_format = data_format or backend.image_data_format()
        check_data_format(self.data_format)

    def _pads(self):
        space = list(self.padding)
        return [(0, 0)] + (space + [(0, 0)] if self.data_format == "channels_last"
                           else [(0, 0)] + space)

    def compute_output_shape(self, input_shape):
        return tuple(s + a + b for s, (a, b) in zip(input_shape, self._pads()[1:]))

    def forward(self, x, training=False):
        return np.pad(x, self._pads()), None

    def backward(self, dy, ctx, need_input_grad=True):
        return dy[tuple(slice(a, dy.shape[i] - b) for i, (a, b) in enumerate(self._pads()))]

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}
