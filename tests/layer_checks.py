"""Finite-difference checks of layers and models (float64)."""
import numpy as np


def _probe(rng, a, picks):
    flat = rng.choice(a.size, size=min(picks, a.size), replace=False)
    return [np.unravel_index(i, a.shape) for i in flat]


def _numeric(loss, a, idx, eps=1e-6):
    old = a[idx]
    a[idx] = old + eps
    up = loss()
    a[idx] = old - eps
    down = loss()
    a[idx] = old
    return (up - down) / (2 * eps)


def check_layer_gradients(layer, inputs, rng, training=True, picks=12, rtol=1e-5):
    """Compare ``layer.backward`` with central differences of ``sum(forward(x) * r)`` for the
    inputs and every weight, at ``picks`` random coordinates each."""
    many = isinstance(inputs, list)
    xs = inputs if many else [inputs]
    layer._ensure_built([tuple(x.shape[1:]) for x in xs] if many else tuple(xs[0].shape[1:]))
    y, ctx = layer.forward(inputs, training)
    r = rng.standard_normal(y.shape)
    for w in layer.weights:
        w.grad = None
    dx = layer.backward(r, ctx, True)
    dxs = dx if many else [dx]

    def loss():
        return float((layer.forward(inputs, training)[0] * r).sum())

    for x, g in zip(xs, dxs):
        for idx in _probe(rng, x, picks):
            np.testing.assert_allclose(g[idx], _numeric(loss, x, idx), rtol=rtol, atol=1e-7)
    for w in layer.trainable_weights:
        for idx in _probe(rng, w.value, picks):
            np.testing.assert_allclose(w.grad[idx], _numeric(loss, w.value, idx), rtol=rtol,
                                       atol=1e-7, err_msg=w.name)
