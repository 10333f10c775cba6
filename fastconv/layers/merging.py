"""Add, ScaledAdd and Concatenate: the merges of residual and Inception blocks."""
import math

import numpy as np

from fastconv._arrays import array_module
from fastconv.layers.base import Layer


class _Merge(Layer):
    def _check(self, shapes):
        if not isinstance(shapes, list) or len(shapes) < 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes a list of at least two "
                             f"inputs")


class Add(_Merge):
    """Element-wise sum of equally shaped inputs."""

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        if len(set(input_shape)) != 1:
            raise ValueError(f"Add {self.name!r} needs equal shapes, got {input_shape}")
        return input_shape[0]

    def forward(self, xs, training=False):
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        return y, len(xs)

    def backward(self, dy, ctx, need_input_grad=True):
        return [dy] * ctx

    def flops(self, input_shape, output_shape):
        return (len(input_shape) - 1) * math.prod(output_shape)


class ScaledAdd(_Merge):
    """``inputs[0] + scale * inputs[1]``: Inception-ResNet's scaled residual sum (Keras writes
    it as a ``Lambda``)."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) != 2 or \
                input_shape[0] != input_shape[1]:
            raise ValueError(f"ScaledAdd {self.name!r} takes two inputs of equal shape, got "
                             f"{input_shape}")
        return input_shape[0]

    def forward(self, xs, training=False):
        x, residual = xs
        return x + residual * x.dtype.type(self.scale), None

    def backward(self, dy, ctx, need_input_grad=True):
        return [dy, dy * dy.dtype.type(self.scale)]

    def flops(self, input_shape, output_shape):
        return 2 * math.prod(output_shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


class Concatenate(_Merge):
    """Join inputs along ``axis`` (the channels by default)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        rank = len(input_shape[0]) + 1
        axis = self.axis % rank - 1
        if axis < 0 or any(len(s) != rank - 1 for s in input_shape):
            raise ValueError(f"Concatenate {self.name!r}: bad axis {self.axis} for shapes "
                             f"{input_shape}")
        rest = {s[:axis] + s[axis + 1:] for s in input_shape}
        if len(rest) != 1:
            raise ValueError(f"Concatenate {self.name!r} needs shapes equal except on axis "
                             f"{self.axis}, got {input_shape}")
        return input_shape[0][:axis] + (sum(s[axis] for s in input_shape),) + \
            input_shape[0][axis + 1:]

    def forward(self, xs, training=False):
        return array_module(xs[0]).concatenate(xs, axis=self.axis), [x.shape[self.axis]
                                                                      for x in xs]

    def backward(self, dy, ctx, need_input_grad=True):
        cuts = np.cumsum(ctx)[:-1]
        return np.split(dy, cuts, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
