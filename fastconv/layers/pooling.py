"""MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D."""
import math

import numpy as np

from fastconv import backend, functional as F
from fastconv._shapes import _positive_pair, check_data_format, conv_output_shape
from fastconv._arrays import array_module
from fastconv.layers.base import Layer


class _Pool2D(Layer):
    _forward = _backward = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _positive_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _positive_pair(strides, "strides")
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.data_format = data_format or backend.image_data_format()
        check_data_format(self.data_format)

    def _args(self):
        return self.pool_size, self.strides, self.padding, self.data_format

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes images, got input "
                             f"shape {input_shape}")
        return conv_output_shape(input_shape, self.pool_size, None, self.strides, self.padding,
                                 1, self.data_format)

    def forward(self, x, training=False):
        return type(self)._forward(x, *self._args()), x

    def backward(self, dy, ctx, need_input_grad=True):
        return type(self)._backward(dy, ctx, *self._args())

    def flops(self, input_shape, output_shape):
        return math.prod(output_shape) * math.prod(self.pool_size)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pool2D):
    """In training, on a backend whose kernels keep window offsets (the CPU ones), the
    backward context is each winner's offset (uint8: a byte per output) instead of x, and the
    backward pass scatters by it without reading x; elsewhere (CuPy, the reference backend,
    windows over 256 cells) the context is x."""
    _forward, _backward = F.max_pool2d, F.max_pool2d_backward

    def forward(self, x, training=False):
        if not (training and F._native_offsets(x, self.pool_size)):
            return super().forward(x, training)
        y, idx = F.max_pool2d(x, *self._args(), return_indices=True)
        return y, (idx, x.shape, x.dtype)

    def backward(self, dy, ctx, need_input_grad=True):
        if not isinstance(ctx, tuple):
            return super().backward(dy, ctx, need_input_grad)
        idx, shape, dtype = ctx
        # x's values are not read: a zero-stride view gives its shape and dtype
        return F.max_pool2d_backward(dy, np.broadcast_to(dtype.type(0), shape), *self._args(),
                                     indices=idx)


class AveragePooling2D(_Pool2D):
    _forward, _backward = F.avg_pool2d, F.avg_pool2d_backward


class _GlobalPool2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or backend.image_data_format()
        check_data_format(self.data_format)
        self.keepdims = keepdims

    def _axes(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def compute_output_shape(self, input_shape):
        axes = [a - 1 for a in self._axes()]
        if self.keepdims:
            return tuple(1 if i in axes else s for i, s in enumerate(input_shape))
        return tuple(s for i, s in enumerate(input_shape) if i not in axes)

    def flops(self, input_shape, output_shape):
        return math.prod(input_shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPool2D):
    def forward(self, x, training=False):
        return F.global_avg_pool2d(x, self.data_format, self.keepdims), x

    def backward(self, dy, ctx, need_input_grad=True):
        return F.global_avg_pool2d_backward(dy, ctx, self.data_format)


class GlobalMaxPooling2D(_GlobalPool2D):
    def forward(self, x, training=False):
        return x.max(axis=self._axes(), keepdims=self.keepdims), x

    def backward(self, dy, ctx, need_input_grad=True):
        """The gradient goes to each map's first maximum (first NaN), as in max pooling."""
        x = ctx
        last = self.data_format == "channels_last"
        n, c = x.shape[0], x.shape[3] if last else x.shape[1]
        flat = x.reshape(n, -1, c) if last else x.reshape(n, c, -1)
        axis = 1 if last else 2
        dx = array_module(x).zeros_like(flat)
        idx = flat.argmax(axis=axis)
        array_module(x).put_along_axis(dx, array_module(x).expand_dims(idx, axis),
                                       array_module(x).expand_dims(dy.reshape(n, c), axis),
                                       axis=axis)
        return dx.reshape(x.shape)
