"""fastconv.applications: Keras' parameter counts and FLOPs, forward passes at native and small
sizes, Keras' argument checks, ScaledAdd's gradient, and a few training steps through Add,
Concatenate, BatchNormalization, depthwise and grouped convolutions."""
import os

import numpy as np
import pytest

from fastconv import applications as A, backend as K, layers as L, utils
from fastconv.datasets import cifar10
from fastconv.models import model_from_json
from layer_checks import check_layer_gradients

# builder: (total parameters in Keras' count, forward GFLOPs per image at the native size,
#           native size, smallest size)
MODELS = {
    "LeNet5": (61_706, 0.00084, 32, 1),
    "AlexNet": (60_965_224, 1.45, 227, 67),
    "VGG16": (138_357_544, 30.95, 224, 32),
    "VGG19": (143_667_240, 39.27, 224, 32),
    "ResNet34": (21_814_696, 7.34, 224, 32),
    "ResNet50": (25_636_712, 7.75, 224, 32),
    "ResNeXt50": (25_097_128, 8.51, 224, 32),
    "InceptionV1": (6_998_552, 3.18, 224, 32),
    "InceptionV3": (23_851_784, 11.48, 299, 75),
    "InceptionV4": (42_711_400, 24.60, 299, 75),
    "InceptionResNetV2": (55_873_736, 26.40, 299, 75),
    "Xception": (22_910_480, 16.79, 299, 71),
}
IMAGENET = [name for name in MODELS if name != "LeNet5"]


@pytest.fixture(scope="module", params=list(MODELS))
def native(request):
    """``(name, model)`` at the native input size, built once per module."""
    utils.set_random_seed(0)
    return request.param, getattr(A, request.param)()


def _count(weights):
    return sum(w.value.size for w in weights)


def test_parameter_counts_and_flops(native):
    name, model = native
    params, gflops, size, _ = MODELS[name]
    assert model.count_params() == params
    assert model.flops() / 1e9 == pytest.approx(gflops, rel=5e-3)
    assert model.input_shape[1:3] == (size, size)


def test_summary_prints_the_counts(native):
    name, model = native
    lines = []
    model.summary(print_fn=lines.append)
    assert f"Total params: {MODELS[name][0]:,}" in lines
    assert f"Non-trainable params: {_count(model.non_trainable_weights):,}" in lines


def test_forward_at_the_native_size(native):
    name, model = native
    x = np.random.default_rng(0).random((1,) + model.input_shape[1:], dtype=np.float32)
    y = model.predict(x)
    assert y.shape == (1, 10 if name == "LeNet5" else 1000)
    np.testing.assert_allclose(y.sum(), 1, rtol=1e-4)


def test_resnet50_has_the_published_multiply_adds():
    """Keras' (and the paper's) ResNet-50 strides the first 1×1 of a block: 3.88 G
    multiply-adds, BN, ReLU and additions included (the paper: 3.8 × 10⁹)."""
    assert A.ResNet50().flops() / 2 == pytest.approx(3.877e9, rel=1e-3)


def test_counts_in_other_conventions():
    """Trainable counts as PyTorch counts them (BN γ and β, no moving statistics)."""
    assert _count(A.ResNet34().trainable_weights) == 21_797_672     # torchvision's resnet34
    assert _count(A.ResNeXt50().trainable_weights) == 25_028_904    # its resnext50_32x4d
    v4 = A.InceptionV4()                  # conv2d_bn has no BN scale; PyTorch ports have one
    bn_channels = sum(layer.beta.value.size for layer in v4.layers
                      if isinstance(layer, L.BatchNormalization))
    assert _count(v4.trainable_weights) + bn_channels == 42_679_816
    assert A.GoogLeNet is A.InceptionV1


@pytest.mark.parametrize("name", IMAGENET)
def test_cifar10_sized_inputs_or_the_minimum_size(name):
    smallest = MODELS[name][3]
    build = getattr(A, name)
    if smallest <= 32:
        model = build(input_shape=(32, 32, 3), classes=10)
        assert model.predict(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)
    else:
        for shape in ((32, 32, 3), (smallest, smallest - 1, 3)):
            with pytest.raises(ValueError, match=f"at least {smallest}x{smallest}"):
                build(input_shape=shape, classes=10)
        model = build(input_shape=(smallest, smallest, 3), classes=10)
        assert model.output_shape == (None, 10)
    with pytest.raises(ValueError, match=f"at least {smallest}x{smallest}"):
        build(input_shape=(smallest - 1, smallest - 1, 3))


@pytest.mark.parametrize("name, size, features", [
    ("VGG16", 32, (1, 1, 512)), ("ResNet50", 64, (2, 2, 2048)), ("Xception", 71, (3, 3, 2048)),
    ("InceptionV3", 75, (1, 1, 2048)), ("AlexNet", 67, (1, 1, 256)), ("LeNet5", 28, (1, 1, 120))])
def test_without_top_and_pooling(name, size, features):
    build = getattr(A, name)
    shape = (size, size, 1 if name == "LeNet5" else 3)
    assert build(include_top=False, input_shape=shape).output_shape == (None,) + features
    for pooling in ("avg", "max"):
        model = build(include_top=False, input_shape=shape, pooling=pooling)
        assert model.output_shape == (None, features[-1])
    assert model.predict(np.ones((1,) + shape, np.float32)).shape == (1, features[-1])


def test_lenet5_keeps_its_signature():
    assert A.LeNet5().count_params() == 61_706
    assert A.LeNet5((28, 28, 1)).output_shape == (None, 10)
    with pytest.raises(ValueError, match="up to 32x32"):
        A.LeNet5((36, 36, 1))


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_weights_are_refused(name):
    with pytest.raises(ValueError, match="cannot download or ship pretrained weights.*"
                                         "weights=None.*load_weights"):
        getattr(A, name)(weights="imagenet")


def test_argument_checks():
    with pytest.raises(ValueError, match="pooling must be None, 'avg' or 'max'"):
        A.ResNet50(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="fixed size"):
        A.VGG16(include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="classes must be a positive int"):
        A.Xception(classes=0)
    with pytest.raises(ValueError, match="symbolic tensor"):
        A.ResNet34(input_tensor=np.zeros((1, 32, 32, 3)))


def test_input_tensor_becomes_the_model_input():
    inputs = L.Input((48, 48, 3))
    model = A.ResNet34(input_tensor=inputs, classes=7)
    assert model.input is inputs and model.output_shape == (None, 7)
    resized = L.ZeroPadding2D(4)(inputs)
    model = A.VGG16(input_tensor=resized, include_top=False, pooling="avg")
    assert model.input is inputs and model.input_shape == (None, 48, 48, 3)


@pytest.mark.parametrize("name, size", [("ResNet50", 32), ("InceptionV1", 32), ("LeNet5", 28)])
def test_channels_first(name, size):
    build = getattr(A, name)
    channels = 1 if name == "LeNet5" else 3
    params = build(input_shape=(size, size, channels), classes=10).count_params()
    K.set_image_data_format("channels_first")
    try:
        model = build(input_shape=(channels, size, size), classes=10)
        x = np.ones((1, channels, size, size), np.float32)
        assert model.count_params() == params and model.predict(x).shape == (1, 10)
    finally:
        K.set_image_data_format("channels_last")


def test_scaled_add_gradients_and_config():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 5, 4, 3)), rng.standard_normal((2, 5, 4, 3))
    check_layer_gradients(L.ScaledAdd(0.17, dtype="float64"), [a, b], rng)
    layer = L.LAYERS["ScaledAdd"].from_config(L.ScaledAdd(0.2, name="s").get_config())
    np.testing.assert_allclose(layer([a, b]), a + 0.2 * b)
    with pytest.raises(ValueError, match="two inputs of equal shape"):
        L.ScaledAdd(0.1)([L.Input((2, 2, 3)), L.Input((2, 2, 4))])


def test_inception_resnet_round_trips_through_json():
    model = A.InceptionResNetV2(input_shape=(75, 75, 3), classes=10)
    copy = model_from_json(model.to_json())
    assert copy.count_params() == model.count_params()
    scales = [layer.scale for layer in copy.layers if isinstance(layer, L.ScaledAdd)]
    assert scales == [0.17] * 10 + [0.1] * 20 + [0.2] * 9 + [1.0]


def _batch(size, n):
    """``n`` CIFAR-10 training images (``$FASTCONV_DATA``) or random images whose brightness
    gives the label, resized to ``size`` by nearest neighbour; one-hot labels."""
    if os.environ.get("FASTCONV_DATA"):
        (x, labels), _ = cifar10.load_data()
        x, labels = x[:n].astype(np.float32) / 255, labels[:n, 0]
    else:
        rng = np.random.default_rng(0)
        labels = np.arange(n) % 10
        x = rng.random((n, 32, 32, 3), dtype=np.float32) * 0.5 + \
            (labels / 18).astype(np.float32)[:, None, None, None]
    rows = np.arange(size) * 32 // size
    return x[:, rows][:, :, rows], utils.to_categorical(labels, 10)


@pytest.mark.parametrize("name, size, batch, steps", [
    ("ResNet34", 32, 16, 5),       # Add, BatchNormalization, projection shortcuts
    ("ResNeXt50", 32, 16, 3),      # grouped convolutions
    ("Xception", 71, 8, 3),        # separable (depthwise) convolutions, at 5× the pixels
    ("InceptionV3", 75, 4, 3),     # Concatenate
])
def test_a_few_training_steps_reduce_the_loss(name, size, batch, steps):
    utils.set_random_seed(0)
    model = getattr(A, name)(input_shape=(size, size, 3), classes=10)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = _batch(size, batch)
    losses = [model.train_on_batch(x, y)[0] for _ in range(steps)]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses
