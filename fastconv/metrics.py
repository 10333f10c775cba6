"""Metrics by Keras' names. 'acc' / 'accuracy' mean the accuracy that fits the loss:
categorical for one-hot labels, sparse categorical for integer labels, binary otherwise.
The log key is the name given (so ``metrics=['acc']`` logs 'acc' and 'val_acc')."""
import numpy as np

from fastconv import losses as losses_module


def categorical_accuracy(y_true, y_pred):
    return np.mean(np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1))


def sparse_categorical_accuracy(y_true, y_pred):
    y_true = np.asarray(y_true).reshape(np.shape(y_pred)[:-1])
    return np.mean(y_true == np.argmax(y_pred, axis=-1))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    return np.mean(np.asarray(y_true) == (np.asarray(y_pred) > threshold))


_FUNCTIONS = {f.__name__: f for f in (categorical_accuracy, sparse_categorical_accuracy,
                                      binary_accuracy)}


def get(identifier, loss):
    """``(log key, fn(y_true, y_pred) -> float)`` for a metric name or function."""
    if callable(identifier):
        return identifier.__name__, identifier
    if identifier in ("acc", "accuracy"):
        if isinstance(loss, losses_module.SparseCategoricalCrossentropy):
            return identifier, sparse_categorical_accuracy
        if isinstance(loss, losses_module.CategoricalCrossentropy):
            return identifier, categorical_accuracy
        return identifier, binary_accuracy
    if identifier in _FUNCTIONS:
        return identifier, _FUNCTIONS[identifier]
    raise ValueError(f"unknown metric {identifier!r}; fastconv has "
                     f"{('acc', 'accuracy') + tuple(_FUNCTIONS)}")
