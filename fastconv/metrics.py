"""Metrics by Keras' names. 'acc' / 'accuracy' mean the accuracy that fits the loss:
categorical for one-hot labels, sparse categorical for integer labels, binary otherwise.
The log key is the name given (so ``metrics=['acc']`` logs 'acc' and 'val_acc')."""
from fastconv import losses as losses_module
from fastconv._arrays import array_module


def _as_arrays(y_true, y_pred):
    """Both as arrays of the module that holds ``y_pred`` (NumPy or CuPy)."""
    xp = array_module(y_pred)
    return xp.asarray(y_true), xp.asarray(y_pred)


def categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).mean()


def sparse_categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return (y_true.reshape(y_pred.shape[:-1]) == y_pred.argmax(axis=-1)).mean()


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return (y_true == (y_pred > threshold)).mean()


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
