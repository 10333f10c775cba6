"""The layer contract, the symbolic tensors of the functional API, and ``Input``.

A layer is built once from its input shape (Keras' shapes: no batch axis) and then runs
``forward(x, training) -> (y, ctx)`` and ``backward(dy, ctx, need_input_grad) -> dx``, adding
weight gradients into ``weight.grad``. ``ctx`` is whatever the backward pass needs, so a layer
object may appear at several places in a graph. Called on a :class:`SymbolicTensor` a layer
records a graph node (Keras' functional API); called on an array it computes eagerly.
"""
import numpy as np

from fastconv import _random, backend, initializers
from fastconv._arrays import array_module, to_numpy
from fastconv._config import get_backend


class Weight:
    """A named array with its gradient; ``trainable=False`` ones (moving statistics) are
    counted as non-trainable parameters and never touched by the optimizer."""

    __slots__ = ("name", "value", "trainable", "grad")

    def __init__(self, name, value, trainable=True):
        self.name, self.value, self.trainable, self.grad = name, value, trainable, None

    @property
    def shape(self):
        return self.value.shape

    def numpy(self):
        return to_numpy(self.value)

    def add_grad(self, g):
        self.grad = g if self.grad is None else self.grad + g

    def __repr__(self):
        return f"<Weight {self.name} shape={self.value.shape} trainable={self.trainable}>"


class SymbolicTensor:
    """A layer's output in a functional graph: its shape (no batch axis) and where it came from."""

    def __init__(self, shape, layer, inputs):
        self.shape, self.layer, self.inputs = tuple(shape), layer, inputs

    @property
    def name(self):
        return self.layer.name

    def __repr__(self):
        return f"<SymbolicTensor shape=(None, {', '.join(map(str, self.shape))}) from {self.name}>"


def _shape_tuple(shape, name):
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"{name} must be positive, got {shape}")
    return shape


class Layer:
    """Base class. Subclasses set ``weights`` in ``build`` and implement ``forward`` /
    ``backward`` / ``compute_output_shape`` / ``get_config`` (and ``flops`` if they compute)."""

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None):
        self.name = name or backend.unique_name(_snake(type(self).__name__))
        self.trainable = trainable
        self.dtype = np.dtype(dtype or backend.floatx())
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_dim is not None:
            input_shape = (input_dim,)
        self.input_shape_hint = None if input_shape is None else _shape_tuple(input_shape,
                                                                               "input_shape")
        self.weights, self.built, self.sample_shape = [], False, None
        self._rng = None

    # -------------------------------------------------------------- building
    def build(self, input_shape):
        """Create the weights for ``input_shape`` (no batch axis)."""

    def _ensure_built(self, input_shape):
        if self.built:
            if input_shape != self.sample_shape:
                raise ValueError(f"layer {self.name!r} was built for input shape "
                                 f"{self.sample_shape} and cannot take {input_shape}")
            return
        self._rng = _random.generator()
        self.build(input_shape)
        self.sample_shape, self.built = input_shape, True

    @property
    def input_shape(self):
        """Keras' input shape, batch axis included: ``(None, 28, 28, 1)``."""
        return _batched(self._require_built().sample_shape)

    @property
    def output_shape(self):
        return _batched(self._require_built().compute_output_shape(self.sample_shape))

    def _require_built(self):
        if not self.built:
            raise AttributeError(f"layer {self.name!r} is not built yet: it has no shapes")
        return self

    def add_weight(self, name, shape, initializer="zeros", trainable=True):
        value = np.asarray(initializers.get(initializer)(tuple(shape), self._rng), self.dtype)
        if get_backend() == "cupy":
            import cupy
            value = cupy.asarray(value)
        w = Weight(f"{self.name}/{name}", value, trainable)
        self.weights.append(w)
        return w

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable and self.trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if not (w.trainable and self.trainable)]

    def get_weights(self):
        return [w.numpy().copy() for w in self.weights]

    def set_weights(self, arrays):
        if len(arrays) != len(self.weights):
            raise ValueError(f"layer {self.name!r} has {len(self.weights)} weights, "
                             f"got {len(arrays)} arrays")
        for w, a in zip(self.weights, arrays):
            if tuple(np.shape(a)) != w.value.shape:
                raise ValueError(f"weight {w.name} has shape {w.value.shape}, got {np.shape(a)}")
            w.value = array_module(w.value).array(a, dtype=w.value.dtype)

    def count_params(self):
        return int(sum(w.value.size for w in self.weights))

    # -------------------------------------------------------------- computing
    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy, ctx, need_input_grad=True):
        raise NotImplementedError

    def flops(self, input_shape, output_shape):
        """Floating-point operations per sample (a multiply-add counts two)."""
        return 0

    def __call__(self, inputs, training=False):
        many = isinstance(inputs, (list, tuple))
        items = list(inputs) if many else [inputs]
        if all(isinstance(t, SymbolicTensor) for t in items):
            shape = [t.shape for t in items] if many else items[0].shape
            self._ensure_built(shape)
            return SymbolicTensor(self.compute_output_shape(shape), self, items)
        if any(isinstance(t, SymbolicTensor) for t in items):
            raise TypeError(f"layer {self.name!r} got a mix of symbolic tensors and arrays")
        if many:
            self._ensure_built([tuple(a.shape[1:]) for a in items])
        else:
            self._ensure_built(tuple(inputs.shape[1:]))
        return self.forward(items if many else inputs, training)[0]

    # -------------------------------------------------------------- config
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


def _batched(shape):
    return [(None,) + tuple(s) for s in shape] if isinstance(shape, list) else (None,) + shape


def _snake(name):
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("2_d", "2d").replace("1_d", "1d")


class InputLayer(Layer):
    """The entry of a graph; holds the input shape."""

    def __init__(self, input_shape=None, name=None, dtype=None, batch_input_shape=None,
                 **kwargs):
        super().__init__(name=name or backend.unique_name("input"), dtype=dtype,
                         input_shape=input_shape, batch_input_shape=batch_input_shape, **kwargs)
        if self.input_shape_hint is None:
            raise ValueError("an input layer needs its shape")
        self._ensure_built(self.input_shape_hint)

    def forward(self, x, training=False):
        return x, None

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "input_shape": self.sample_shape}


def Input(shape=None, name=None, dtype=None, batch_shape=None):
    """The entry point of a functional model: ``x = Input((28, 28, 1))``."""
    if shape is None and batch_shape is not None:
        shape = tuple(batch_shape)[1:]
    layer = InputLayer(input_shape=shape, name=name, dtype=dtype)
    return SymbolicTensor(layer.sample_shape, layer, [])


class ActivationMixin:
    """For layers ending in an activation: ``backward`` = activation gradient, then
    ``backward_preactivation`` (which a model calls directly for softmax + cross-entropy)."""

    def backward(self, dy, ctx, need_input_grad=True):
        return self.backward_preactivation(self.activation.backward(dy, ctx["y"]), ctx,
                                           need_input_grad)
