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


def dropout_keep(shape, rate, seed):
    """The dropout keep-mask of ``seed`` (bool, ``shape``): element ``i`` (flat index) is kept
    when SplitMix64's finaliser of ``seed + golden * (i + 1)`` has its top 32 bits at or above
    ``rate * 2**32``. Written in NumPy for obviousness; the kernels compute it in their pass."""
    u = np.uint64
    z = u(seed % 2**63) + u(0x9E3779B97F4A7C15) * np.arange(1, np.prod(shape) + 1, dtype=u)
    z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
    z ^= z >> u(31)
    return ((z >> u(32)).astype(np.int64) >= round(rate * 2**32)).reshape(shape)
