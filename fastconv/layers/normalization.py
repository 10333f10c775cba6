"""BatchNormalization with Keras' arguments and its moving statistics as non-trainable
weights."""
import numpy as np

from fastconv.layers.base import Layer


class BatchNormalization(Layer):
    """Normalise over every axis but ``axis`` with batch statistics in training, moving
    statistics at inference: ``moving = momentum·moving + (1-momentum)·batch``."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.initializers = dict(beta=beta_initializer, gamma=gamma_initializer,
                                 moving_mean=moving_mean_initializer,
                                 moving_variance=moving_variance_initializer)

    def build(self, input_shape):
        rank = len(input_shape) + 1
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"{self.name}: axis {self.axis} is not a feature axis of an input "
                             f"of shape (None, {', '.join(map(str, input_shape))})")
        n = input_shape[self.axis % rank - 1]
        init = self.initializers
        self.gamma = self.add_weight("gamma", (n,), init["gamma"]) if self.scale else None
        self.beta = self.add_weight("beta", (n,), init["beta"]) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (n,), init["moving_mean"], False)
        self.moving_variance = self.add_weight("moving_variance", (n,), init["moving_variance"],
                                               False)

    def _shape(self, x):
        """Broadcast shape of a per-feature vector, and the reduced axes."""
        axis = self.axis % x.ndim
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        return shape, tuple(i for i in range(x.ndim) if i != axis)

    def forward(self, x, training=False):
        shape, axes = self._shape(x)
        if training:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            for w, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
                w.value *= self.momentum
                w.value += (1 - self.momentum) * batch.astype(w.value.dtype)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        inv = (1 / np.sqrt(var + self.epsilon)).astype(x.dtype)
        scale = inv * self.gamma.value if self.scale else inv
        shift = -mean * scale + (self.beta.value if self.center else 0)
        y = x * scale.reshape(shape)
        y += shift.astype(x.dtype).reshape(shape)
        return y, (x, mean, inv, training)

    def backward(self, dy, ctx, need_input_grad=True):
        x, mean, inv, training = ctx
        shape, axes = self._shape(dy)
        xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
        if self.center:
            self.beta.add_grad(dy.sum(axis=axes))
        if self.scale:
            self.gamma.add_grad((dy * xhat).sum(axis=axes))
        if not need_input_grad:
            return None
        g = dy * self.gamma.value.reshape(shape) if self.scale else dy
        if not training:
            return g * inv.reshape(shape)
        mean_g = g.mean(axis=axes, keepdims=True)
        mean_gx = (g * xhat).mean(axis=axes, keepdims=True)
        return (g - mean_g - xhat * mean_gx) * inv.reshape(shape)

    def flops(self, input_shape, output_shape):
        return 2 * int(np.prod(input_shape))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                **{f"{k}_initializer": v for k, v in self.initializers.items()}}
