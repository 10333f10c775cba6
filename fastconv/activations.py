"""Activations, each with its gradient written from the output (what a layer keeps).

``get('relu')`` returns an :class:`Activation`; forward may work in place on a fresh array.
"""
import numpy as np

from fastconv import functional


class Activation:
    """``forward(z) -> y`` and ``backward(dy, y) -> dz``."""

    def __init__(self, name, forward, backward):
        self.name, self.forward, self.backward = name, forward, backward

    def __call__(self, z):
        return self.forward(z.copy())

    def __repr__(self):
        return f"<activation {self.name}>"


def _relu(z):
    return np.maximum(z, 0, out=z)


def _sigmoid(z):
    # split by sign so exp never overflows
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _softmax_backward(dy, y):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


_TABLE = {
    "linear": (lambda z: z, lambda dy, y: dy),
    "relu": (_relu, lambda dy, y: functional.relu_backward(dy, y)),
    "tanh": (lambda z: np.tanh(z, out=z), lambda dy, y: dy * (1 - y * y)),
    "sigmoid": (_sigmoid, lambda dy, y: dy * y * (1 - y)),
    "softmax": (_softmax, _softmax_backward),
}
NAMES = tuple(_TABLE)


def get(identifier):
    """An :class:`Activation` from a name (None means 'linear') or an Activation."""
    if identifier is None:
        identifier = "linear"
    if isinstance(identifier, Activation):
        return identifier
    if identifier in _TABLE:
        return Activation(identifier, *_TABLE[identifier])
    raise ValueError(f"unknown activation {identifier!r}; fastconv has {NAMES}")


def _public(name):
    fn = _TABLE[name][0]
    return lambda x: fn(np.array(x, dtype=np.result_type(x, np.float32)))


relu, tanh, sigmoid, softmax, linear = (_public(n) for n in ("relu", "tanh", "sigmoid",
                                                              "softmax", "linear"))
