"""Dense, Activation, Dropout, Flatten, Reshape."""
import math

import numpy as np

from fastconv import _random, activations, backend, functional as F
from fastconv._shapes import check_data_format
from fastconv.layers.base import ActivationMixin, Layer


class Dense(ActivationMixin, Layer):
    """``activation(x @ kernel + bias)`` on the last axis; kernel ``(in, units)``."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units must be a positive int, got {units!r}")
        self.units, self.use_bias = int(units), use_bias
        self.activation = activations.get(activation)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) \
            if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        z = F.matmul(x.reshape(-1, x.shape[-1]), self.kernel.value)
        z = z.reshape(x.shape[:-1] + (self.units,))
        if self.bias is not None:
            z += self.bias.value
        y = self.activation.forward(z)
        return y, {"x": x, "y": y}

    def backward_preactivation(self, dz, ctx, need_input_grad=True):
        x, dz2 = ctx["x"], dz.reshape(-1, self.units)
        self.kernel.add_grad(F.matmul(x.reshape(-1, x.shape[-1]).T, dz2))
        if self.bias is not None:
            self.bias.add_grad(dz2.sum(axis=0))
        if not need_input_grad:
            return None
        return F.matmul(dz2, self.kernel.value.T).reshape(x.shape)

    def flops(self, input_shape, output_shape):
        return 2 * math.prod(input_shape) * self.units

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation.name,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}


class Activation(ActivationMixin, Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, x, training=False):
        y = self.activation.forward(x.copy())
        return y, {"y": y}

    def backward_preactivation(self, dz, ctx, need_input_grad=True):
        return dz

    def flops(self, input_shape, output_shape):
        return math.prod(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name}


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the
    rest by ``1 / (1 - rate)``; at inference, the identity."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"the dropout rate must lie in [0, 1), got {rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def build(self, input_shape):
        if self.seed is not None:
            self._rng = _random.generator(self.seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if s is None else s for i, s in enumerate(self.noise_shape))
        seed = int(self._rng.integers(2**63))   # one mask per step, reproducible from the seed
        return F.dropout(x, self.rate, seed, shape), (seed, shape)

    def backward(self, dy, ctx, need_input_grad=True):
        """The same mask again, recomputed from its seed (it is never stored)."""
        return dy if ctx is None else F.dropout(dy, self.rate, *ctx)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}


class Flatten(Layer):
    """Flatten all but the batch axis; channels_first input is flattened in channels_last
    order (Keras' rule, so weights carry over between data formats)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or backend.image_data_format()
        check_data_format(self.data_format)

    def _to_last(self, x):
        if self.data_format == "channels_first" and x.ndim > 2:
            return x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
        return x

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        return self._to_last(x).reshape(len(x), -1), x.shape

    def backward(self, dy, ctx, need_input_grad=True):
        shape = ctx
        if self.data_format == "channels_first" and len(shape) > 2:
            last = (shape[0],) + tuple(shape[2:]) + (shape[1],)
            return dy.reshape(last).transpose((0, len(shape) - 1) + tuple(range(1, len(shape) - 1)))
        return dy.reshape(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def compute_output_shape(self, input_shape):
        shape = list(self.target_shape)
        if -1 in shape:
            shape[shape.index(-1)] = math.prod(input_shape) // -math.prod(shape)
        if math.prod(shape) != math.prod(input_shape):
            raise ValueError(f"cannot reshape {input_shape} into {self.target_shape}")
        return tuple(shape)

    def forward(self, x, training=False):
        return x.reshape((len(x),) + self.target_shape), x.shape

    def backward(self, dy, ctx, need_input_grad=True):
        return dy.reshape(ctx)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
