"""One seed for everything random in training: initial weights, dropout masks, shuffling.

``fastconv.utils.set_random_seed(s)`` restarts the stream; each consumer takes its own
``numpy.random.Generator`` from it in the order the model is built, so one seed gives one run.
"""
import numpy as np

_root = [np.random.SeedSequence()]


def set_seed(seed):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"the seed must be a non-negative int, got {seed!r}")
    _root[0] = np.random.SeedSequence(int(seed))


def generator(seed=None):
    """A new generator: from ``seed`` if given, else the next one from the global stream."""
    if seed is not None:
        return np.random.default_rng(seed)
    return np.random.default_rng(_root[0].spawn(1)[0])
