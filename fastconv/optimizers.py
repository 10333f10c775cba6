"""Optimizers with Keras 2.3's update rules, argument names and defaults.

``learning_rate`` (alias ``lr``) may be changed between steps (ReduceLROnPlateau does);
``decay`` is Keras' legacy time decay ``lr / (1 + decay · iterations)``; ``clipnorm`` /
``clipvalue`` clip each gradient. Slots (momenta, accumulators) live in ``state`` so a
checkpoint can carry them.
"""
import numpy as np

from fastconv._arrays import array_module


class Optimizer:
    name = None
    _slots = ()

    def __init__(self, learning_rate=0.01, decay=0.0, clipnorm=None, clipvalue=None, lr=None):
        self.learning_rate = float(learning_rate if lr is None else lr)
        if self.learning_rate < 0 or decay < 0:
            raise ValueError("learning_rate and decay must be >= 0")
        self.decay, self.clipnorm, self.clipvalue = float(decay), clipnorm, clipvalue
        self.iterations = 0
        self.state = {}

    @property
    def lr(self):
        return self.learning_rate

    @lr.setter
    def lr(self, value):
        self.learning_rate = float(value)

    def _clip(self, g):
        if self.clipvalue is not None:
            g = np.clip(g, -self.clipvalue, self.clipvalue)
        if self.clipnorm is not None:
            norm = float(np.sqrt((g * g).sum()))
            if norm > self.clipnorm:
                g = g * (self.clipnorm / norm)
        return g

    def apply(self, weights):
        """One update of every weight that has a gradient."""
        for slot in self._slots:
            if slot not in self.state:
                self.state[slot] = [np.zeros_like(w.value) for w in weights]
        self.iterations += 1
        lr = self.learning_rate / (1 + self.decay * (self.iterations - 1))
        for i, w in enumerate(weights):
            if w.grad is not None:
                self._update(i, w.value, self._clip(w.grad), lr)

    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate, "decay": self.decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue}

    def get_state(self):
        """The slots and step count as a flat dict of arrays (for checkpoints)."""
        out = {f"{slot}/{i}": a for slot, arrays in self.state.items()
               for i, a in enumerate(arrays)}
        out["iterations"] = np.array(self.iterations)
        return out

    def set_state(self, state, weights):
        self.iterations = int(state["iterations"])
        self.state = {slot: [array_module(w.value).array(state[f"{slot}/{i}"],
                                                         dtype=w.value.dtype)
                             for i, w in enumerate(weights)]
                      for slot in self._slots if f"{slot}/0" in state}


class SGD(Optimizer):
    """Keras' SGD: ``v = momentum·v - lr·g``; ``p += v`` (Nesterov: ``p += momentum·v - lr·g``)."""
    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self._slots = ("velocity",) if momentum else ()

    def _update(self, i, p, g, lr):
        if not self.momentum:
            p -= lr * g
            return
        v = self.state["velocity"][i]
        v *= self.momentum
        v -= lr * g
        p += self.momentum * v - lr * g if self.nesterov else v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras' bias correction folded into the step size."""
    name = "Adam"
    _slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _update(self, i, p, g, lr):
        m, v, t = self.state["m"][i], self.state["v"][i], self.iterations
        m *= self.beta_1
        m += (1 - self.beta_1) * g
        v *= self.beta_2
        v += (1 - self.beta_2) * g * g
        lr_t = lr * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        p -= lr_t * m / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    name = "RMSprop"
    _slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _update(self, i, p, g, lr):
        a = self.state["accumulator"][i]
        a *= self.rho
        a += (1 - self.rho) * g * g
        p -= lr * g / (np.sqrt(a) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta with Keras 2.3's defaults: learning rate 1.0, rho 0.95, epsilon 1e-7."""
    name = "Adadelta"
    _slots = ("accumulator", "delta_accumulator")

    def __init__(self, learning_rate=1.0, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _update(self, i, p, g, lr):
        a, d = self.state["accumulator"][i], self.state["delta_accumulator"][i]
        a *= self.rho
        a += (1 - self.rho) * g * g
        step = g * np.sqrt(d + self.epsilon) / np.sqrt(a + self.epsilon)
        p -= lr * step
        d *= self.rho
        d += (1 - self.rho) * step * step

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


_CLASSES = {c.name.lower(): c for c in (SGD, Adam, RMSprop, Adadelta)}


def get(identifier):
    """An optimizer from a name ('adadelta', 'Adam', …), a config dict or an Optimizer."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        return _CLASSES[config.pop("name").lower()](**config)
    if isinstance(identifier, str) and identifier.lower() in _CLASSES:
        return _CLASSES[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; fastconv has "
                     f"{tuple(c.name for c in _CLASSES.values())}")
