"""Losses with Keras' names, each giving its mean value and its gradient.

``model.compile(loss=...)`` takes a name ('categorical_crossentropy'), a function of this
module (``keras.losses.categorical_crossentropy``) or a Loss object. The batch value is the
mean over samples (Keras' 'sum_over_batch_size'). Cross-entropies clip probabilities to
[ε, 1-ε] like Keras; behind a softmax the model uses the exact, stable gradient
``(p - y) / N`` with respect to the softmax input (:meth:`CrossEntropy.softmax_grad`).
"""
import numpy as np

from fastconv._arrays import array_module
from fastconv.backend import epsilon


def _check(y_true, y_pred, sparse):
    want = y_pred.shape[:-1] if sparse else y_pred.shape
    got = y_true.shape[:-1] if sparse and y_true.ndim == y_pred.ndim else y_true.shape
    if got != want:
        hint = ("; integer labels need sparse_categorical_crossentropy, or one-hot them with "
                "fastconv.utils.to_categorical") if not sparse else ""
        raise ValueError(f"labels have shape {y_true.shape} but the model outputs "
                         f"{y_pred.shape}{hint}")


def _sparse_index(y_true, y_pred):
    y = y_true.reshape(y_pred.shape[:-1]).astype(np.intp)
    if y.size and (y.min() < 0 or y.max() >= y_pred.shape[-1]):
        raise ValueError(f"labels must lie in [0, {y_pred.shape[-1]}), got "
                         f"[{y.min()}, {y.max()}]")
    return y


class Loss:
    """``loss(y_true, y_pred)`` is the batch mean; ``value_and_grad`` adds d(mean)/d(y_pred)."""
    name = None
    from_logits = False

    def __call__(self, y_true, y_pred):
        return self.value_and_grad(y_true, y_pred, grad=False)[0]

    def get_config(self):
        return {"name": self.name}


class CrossEntropy(Loss):
    sparse = False

    def __init__(self, from_logits=False):
        self.from_logits = from_logits

    def _one_hot(self, y_true, y_pred):
        xp = array_module(y_pred)
        y_true = xp.asarray(y_true)
        _check(y_true, y_pred, self.sparse)
        if not self.sparse:
            return y_true.astype(y_pred.dtype, copy=False)
        return xp.eye(y_pred.shape[-1], dtype=y_pred.dtype)[_sparse_index(y_true, y_pred)]

    def value_and_grad(self, y_true, y_pred, grad=True):
        y = self._one_hot(y_true, y_pred)
        n = max(1, y_pred.shape[0])
        if self.from_logits:
            z = y_pred - y_pred.max(axis=-1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            value = -(y * log_p).sum() / n
            return float(value), ((np.exp(log_p) - y) / n if grad else None)
        eps = epsilon()
        p = np.clip(y_pred, eps, 1 - eps)
        value = -(y * np.log(p)).sum() / n
        if not grad:
            return float(value), None
        inside = (y_pred > eps) & (y_pred < 1 - eps)
        return float(value), -y / p * inside / n

    def softmax_grad(self, y_true, probs):
        """Gradient of the mean loss with respect to the logits when ``probs = softmax(z)``."""
        return (probs - self._one_hot(y_true, probs)) / max(1, probs.shape[0])

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(CrossEntropy):
    name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(CrossEntropy):
    name = "sparse_categorical_crossentropy"
    sparse = True


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def value_and_grad(self, y_true, y_pred, grad=True):
        y_true = array_module(y_pred).asarray(y_true)
        _check(y_true, y_pred, False)
        d = y_pred - y_true
        per_sample = max(1, d[0].size) if d.ndim > 1 else 1
        value = float((d * d).sum() / max(1, y_pred.shape[0]) / per_sample)
        return value, (2 * d / d.size if grad and d.size else None)


_CLASSES = {c.name: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                MeanSquaredError)}
_ALIASES = {"mse": "mean_squared_error"}


def _per_sample(cls):
    def loss(y_true, y_pred):
        y_pred = array_module(y_pred).asarray(y_pred)
        return np.array([cls()(y_true[i:i + 1], y_pred[i:i + 1]) for i in range(len(y_pred))])
    loss.__name__ = cls.name
    loss.__doc__ = f"Per-sample {cls.name.replace('_', ' ')}, as Keras' function of this name."
    return loss


categorical_crossentropy = _per_sample(CategoricalCrossentropy)
sparse_categorical_crossentropy = _per_sample(SparseCategoricalCrossentropy)
mean_squared_error = mse = _per_sample(MeanSquaredError)


def get(identifier):
    """A :class:`Loss` from a name, one of this module's functions, or a Loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        return _CLASSES[config.pop("name")](**config)
    name = getattr(identifier, "__name__", identifier)
    name = _ALIASES.get(name, name)
    if name in _CLASSES:
        return _CLASSES[name]()
    raise ValueError(f"unknown loss {identifier!r}; fastconv has {tuple(_CLASSES)}")
