"""Weight initialisers with Keras' names and fan rules.

A conv kernel ``(kh, kw, in, out)`` has fan_in = kh·kw·in and fan_out = kh·kw·out; the
'normal' variants of Glorot, He and LeCun draw from a normal truncated at two standard
deviations, rescaled as Keras does (stddev / 0.8796…).
"""
import numpy as np

_TRUNC_STD = 0.87962566103423978   # std of a unit normal truncated to [-2, 2]


def _fans(shape):
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, shape, std):
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * (std / _TRUNC_STD)


def _variance_scaling(scale, mode, distribution):
    def init(shape, rng):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        var = scale / max(1.0, n)
        if distribution == "uniform":
            limit = np.sqrt(3 * var)
            return rng.uniform(-limit, limit, shape)
        return _truncated_normal(rng, shape, np.sqrt(var))
    return init


_TABLE = {
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "normal"),
    "random_normal": lambda shape, rng: rng.normal(0.0, 0.05, shape),
    "random_uniform": lambda shape, rng: rng.uniform(-0.05, 0.05, shape),
    "zeros": lambda shape, rng: np.zeros(shape),
    "ones": lambda shape, rng: np.ones(shape),
}
NAMES = tuple(_TABLE)


def get(name):
    """``init(shape, rng) -> float64 array`` for a Keras initialiser name."""
    if callable(name):
        return name
    try:
        return _TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initializer {name!r}; fastconv has {NAMES}") from None
