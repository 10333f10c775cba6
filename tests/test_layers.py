"""Layers: gradients by finite differences, forwards against the functional reference,
Keras' parameter counts and argument checks."""
import numpy as np
import pytest

import fastconv
from fastconv import backend as K, layers as L
from layer_checks import GRADIENT_CASES, IMAGE, check_layer_gradients, f64


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_layer_gradients_by_finite_differences(case, rng):
    check_layer_gradients(GRADIENT_CASES[case](), rng.standard_normal(IMAGE), rng)


@pytest.mark.parametrize("cls,args", [(L.Conv2D, (3, 3)), (L.DepthwiseConv2D, (3,)),
                                      (L.SeparableConv2D, (4, 3)), (L.MaxPooling2D, (2,)),
                                      (L.Flatten, ()), (L.ZeroPadding2D, (1,)),
                                      (L.GlobalMaxPooling2D, ())])
def test_channels_first_gradients(cls, args, rng):
    layer = cls(*args, data_format="channels_first", dtype="float64")
    check_layer_gradients(layer, rng.standard_normal((2, 3, 6, 5)), rng)


def test_dense_and_merge_gradients(rng):
    check_layer_gradients(f64(L.Dense, 4, activation="relu"), rng.standard_normal((3, 5)), rng)
    check_layer_gradients(f64(L.Dense, 2), rng.standard_normal((3, 4, 5)), rng)
    a, b = rng.standard_normal(IMAGE), rng.standard_normal(IMAGE)
    check_layer_gradients(f64(L.Add), [a, b], rng)
    check_layer_gradients(f64(L.Concatenate), [a, rng.standard_normal(IMAGE[:3] + (2,))], rng)


def test_batch_norm_inference_gradient(rng):
    bn = f64(L.BatchNormalization, momentum=0.5)
    x = rng.standard_normal(IMAGE) * 3 + 1
    bn(x)
    bn.forward(x, training=True)
    check_layer_gradients(bn, x, rng, training=False)


def test_conv_layer_matches_the_reference(rng):
    x = rng.standard_normal(IMAGE)
    layer = f64(L.Conv2D, 6, 3, strides=2, padding="same", groups=2, activation="relu")
    y = layer(x)
    expected = fastconv.conv2d(x, layer.kernel.value, layer.bias.value, strides=2,
                               padding="same", groups=2, backend="reference")
    np.testing.assert_allclose(y, np.maximum(expected, 0), rtol=1e-10, atol=1e-12)


def test_channels_first_layer_equals_channels_last(rng):
    x = rng.standard_normal(IMAGE)
    last = f64(L.Conv2D, 3, 3, padding="same")
    first = f64(L.Conv2D, 3, 3, padding="same", data_format="channels_first")
    last(x), first(x.transpose(0, 3, 1, 2))
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(first(x.transpose(0, 3, 1, 2)), last(x).transpose(0, 3, 1, 2),
                               rtol=1e-12)
    flat_first = L.Flatten(data_format="channels_first")(x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(flat_first, L.Flatten()(x))


def test_depthwise_and_separable_match_per_channel_convolutions(rng):
    x = rng.standard_normal((1, 6, 6, 3))
    dw = f64(L.DepthwiseConv2D, 3, depth_multiplier=2, use_bias=False)
    y = dw(x)
    k = dw.depthwise_kernel.value                      # (3, 3, C, m)
    for c in range(3):
        for m in range(2):
            ref = fastconv.conv2d(x[..., c:c + 1], k[:, :, c:c + 1, m:m + 1], backend="reference")
            np.testing.assert_allclose(y[..., 2 * c + m], ref[..., 0], rtol=1e-10)
    sep = f64(L.SeparableConv2D, 4, 3, depth_multiplier=2)
    z = sep(x)
    h = fastconv.conv2d(x, sep.depthwise_kernel.value.reshape(3, 3, 1, 6), groups=3,
                        backend="reference")
    ref = fastconv.conv2d(h, sep.pointwise_kernel.value, sep.bias.value, backend="reference")
    np.testing.assert_allclose(z, ref, rtol=1e-10, atol=1e-12)


def test_dropout_is_inverted_and_off_at_inference(rng):
    layer = L.Dropout(0.25, seed=3)
    x = np.ones((400, 50), np.float32)
    layer(x)
    y, mask = layer.forward(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(layer.backward(x, mask), y)
    np.testing.assert_array_equal(layer(x), x)
    shared = L.Dropout(0.5, noise_shape=(None, 1), seed=1)
    shared(x)
    y = shared.forward(x, training=True)[0]
    assert ((y == 0).all(axis=1) | (y != 0).all(axis=1)).all()


def test_batch_norm_statistics():
    bn = L.BatchNormalization(momentum=0.9, epsilon=0.0)
    x = np.random.default_rng(0).normal(3.0, 2.0, (500, 4, 4, 2)).astype(np.float32)
    bn(x)
    y = bn.forward(x, training=True)[0]
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1, atol=1e-3)
    np.testing.assert_allclose(bn.moving_mean.value, 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.value, 0.9 + 0.1 * x.var(axis=(0, 1, 2)),
                               rtol=1e-4)
    np.testing.assert_allclose(bn(x), (x - bn.moving_mean.value) /
                               np.sqrt(bn.moving_variance.value), rtol=1e-4)


@pytest.mark.parametrize("layer,input_shape,params,trainable", [
    (lambda: L.Conv2D(32, 3), (28, 28, 1), 320, 320),
    (lambda: L.Conv2D(64, 3, use_bias=False, groups=2), (9, 9, 8), 2304, 2304),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (9, 9, 8), 3 * 3 * 8 * 2 + 16, 160),
    (lambda: L.SeparableConv2D(16, 3), (9, 9, 8), 72 + 128 + 16, 216),
    (lambda: L.BatchNormalization(), (9, 9, 8), 32, 16),
    (lambda: L.Dense(64), (576,), 36928, 36928),
])
def test_parameter_counts_are_keras(layer, input_shape, params, trainable):
    model = fastconv.models.Sequential([L.InputLayer(input_shape), layer()])
    assert model.count_params() == params
    assert sum(w.value.size for w in model.trainable_weights) == trainable


def test_initializers_follow_keras_fans():
    rng = np.random.default_rng(0)
    w = fastconv.initializers.get("glorot_uniform")((3, 3, 64, 128), rng)
    limit = np.sqrt(6 / (9 * 64 + 9 * 128))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    w = fastconv.initializers.get("he_normal")((3, 3, 64, 128), rng)
    assert abs(w.std() - np.sqrt(2 / (9 * 64))) < 0.01 * np.sqrt(2 / (9 * 64))
    assert np.abs(w).max() <= 2 * np.sqrt(2 / (9 * 64)) / 0.8796 + 1e-9


def test_automatic_names_are_keras():
    K.clear_session()
    assert [L.Conv2D(1, 1).name, L.Conv2D(1, 1).name, L.MaxPooling2D().name] == \
        ["conv2d", "conv2d_1", "max_pooling2d"]


@pytest.mark.parametrize("make,error", [
    (lambda: L.Conv2D(0, 3), ValueError),
    (lambda: L.Conv2D(4, 3, groups=3), ValueError),
    (lambda: L.Conv2D(4, (3, 0)), ValueError),
    (lambda: L.Conv2D(4, 3, data_format="nhwc"), ValueError),
    (lambda: L.Conv2D(4, 3, activation="swishy"), ValueError),
    (lambda: L.Conv2D(4, 3, kernel_initializer="bogus").build((5, 5, 1)), ValueError),
    (lambda: L.Conv2D(4, 3, filtres=2), TypeError),
    (lambda: L.Dropout(1.0), ValueError),
    (lambda: L.Dense(-1), ValueError),
    (lambda: L.ZeroPadding2D(((1, -1), (0, 0))), ValueError),
])
def test_bad_arguments_are_refused(make, error):
    with pytest.raises(error):
        make()


def test_layer_refuses_a_second_input_shape():
    layer = L.Conv2D(2, 3)
    with pytest.raises(AttributeError, match="not built"):
        layer.output_shape
    layer(np.zeros((1, 5, 5, 1), np.float32))
    assert (layer.input_shape, layer.output_shape) == ((None, 5, 5, 1), (None, 3, 3, 2))
    with pytest.raises(ValueError, match="built for input shape"):
        layer(np.zeros((1, 6, 6, 1), np.float32))


def test_merge_shape_errors():
    a, b = L.Input((4, 4, 2)), L.Input((4, 4, 3))
    with pytest.raises(ValueError, match="equal shapes"):
        L.Add()([a, b])
    assert L.Concatenate()([a, b]).shape == (4, 4, 5)
    with pytest.raises(ValueError, match="at least two"):
        L.Add()([a])
