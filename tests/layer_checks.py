"""Finite-difference checks of layers and models (float64), and the layers they check."""
import numpy as np

from fastconv import layers as L


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


def f64(cls, *args, **kwargs):
    return cls(*args, dtype="float64", **kwargs)


IMAGE = (2, 7, 6, 4)

GRADIENT_CASES = {
    "conv valid relu": lambda: f64(L.Conv2D, 3, 3, activation="tanh"),
    "conv same strided": lambda: f64(L.Conv2D, 5, (3, 2), strides=2, padding="same"),
    "conv dilated": lambda: f64(L.Conv2D, 2, 2, dilation_rate=2, activation="sigmoid"),
    "conv grouped": lambda: f64(L.Conv2D, 6, 3, groups=2, padding="same"),
    "conv 1x1": lambda: f64(L.Conv2D, 3, 1),
    "conv explicit padding": lambda: f64(L.Conv2D, 3, 3, padding=((1, 0), (2, 1))),
    "depthwise x2": lambda: f64(L.DepthwiseConv2D, 3, depth_multiplier=2, padding="same"),
    "separable": lambda: f64(L.SeparableConv2D, 5, 3, strides=2, depth_multiplier=2,
                             activation="relu"),
    "batch norm": lambda: f64(L.BatchNormalization),
    "max pool": lambda: f64(L.MaxPooling2D, 2),
    "max pool same": lambda: f64(L.MaxPooling2D, 3, strides=2, padding="same"),
    "avg pool": lambda: f64(L.AveragePooling2D, (2, 3), strides=1),
    "global avg": lambda: f64(L.GlobalAveragePooling2D),
    "global max": lambda: f64(L.GlobalMaxPooling2D),
    "zero padding": lambda: f64(L.ZeroPadding2D, ((1, 2), (0, 3))),
    "flatten": lambda: f64(L.Flatten),
    "softmax": lambda: f64(L.Activation, "softmax"),
    "reshape": lambda: f64(L.Reshape, (7, -1)),
}
