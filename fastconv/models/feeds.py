"""Where training batches come from: arrays (shuffled each epoch) or a batch iterator such as
``ImageDataGenerator.flow``. One rule for checking and casting every batch."""
import math

import numpy as np


def as_inputs(x, input_shape, what="x"):
    """``x`` as an array whose samples have ``input_shape``; a clear error otherwise."""
    x = np.asarray(x) if not hasattr(x, "__array_namespace__") and not hasattr(x, "shape") else x
    if x.dtype.kind not in "fiu" or x.dtype.kind == "c":
        raise TypeError(f"{what} has dtype {x.dtype}; pass numbers (uint8 or float images)")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{what} has shape {x.shape}: samples of shape {tuple(x.shape[1:])}, "
                         f"but the model takes {tuple(input_shape)}")
    return x


def cast_batch(xp, xb, dtype, what="x"):
    """One batch as ``dtype`` on the model's device, refusing NaN and Inf."""
    xb = xp.asarray(xb, dtype=dtype)
    if not bool(xp.isfinite(xb).all()):
        raise ValueError(f"{what} holds NaN or Inf; clean the data before training")
    return xb


class ArrayFeed:
    """Mini-batches of ``(x, y)`` arrays; reshuffled each epoch when ``shuffle``."""

    def __init__(self, x, y, batch_size, shuffle, rng, steps=None):
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        if len(x) == 0:
            raise ValueError("no samples to train on (x is empty)")
        self.x, self.y, self.batch_size, self.shuffle, self.rng = x, y, batch_size, shuffle, rng
        self.steps = steps or math.ceil(len(x) / batch_size)
        self._order, self._pos = None, 0

    def _next_indices(self):
        if self._order is None or self._pos >= len(self.x):
            self._order = self.rng.permutation(len(self.x)) if self.shuffle else \
                np.arange(len(self.x))
            self._pos = 0
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return np.sort(idx)

    def epoch(self):
        if self.steps == math.ceil(len(self.x) / self.batch_size):
            self._order = None       # whole passes: each epoch starts a fresh permutation
        for _ in range(self.steps):
            idx = self._next_indices()
            yield self.x[idx], (None if self.y is None else self.y[idx])


class IteratorFeed:
    """``steps`` batches per epoch from an endless iterator of ``(x, y)`` pairs."""

    def __init__(self, source, steps):
        if steps is None:
            try:
                steps = len(source)
            except TypeError:
                raise ValueError("steps_per_epoch is needed for a generator without len()") \
                    from None
        self.source, self.steps = source, int(steps)
        self._it = iter(source)

    def epoch(self):
        for _ in range(self.steps):
            batch = next(self._it)
            if not isinstance(batch, tuple) or len(batch) not in (2, 3):
                raise ValueError("a generator for fit must yield (x, y) pairs")
            yield batch[0], batch[1]


def is_iterator(x):
    return not hasattr(x, "shape") and (hasattr(x, "__next__") or hasattr(x, "__getitem__")
                                        and hasattr(x, "__len__") and not isinstance(
                                            x, (list, tuple)))
