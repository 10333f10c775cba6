"""Keras' ``utils``: one-hot labels and the global seed."""
import numpy as np

from fastconv._random import set_seed


def to_categorical(y, num_classes=None, dtype="float32"):
    """Integer class vector → one-hot matrix, as ``keras.utils.to_categorical``.

    >>> to_categorical([0, 2], 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError("to_categorical takes integer class labels")
        y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"class labels must be >= 0, got {y.min()}")
    top = int(y.max()) + 1 if y.size else 0
    num_classes = top if num_classes is None else num_classes
    if top > num_classes:
        raise ValueError(f"label {top - 1} does not fit num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype)
    np.put_along_axis(out, y[..., None].astype(np.intp), 1, axis=-1)
    return out


def set_random_seed(seed):
    """Make weight initialisation, dropout and shuffling reproducible (as Keras' function)."""
    set_seed(seed)


__all__ = ["to_categorical", "set_random_seed"]
