"""Inception-ResNet-v2 (Szegedy et al., 2016), layer for layer as
``keras.applications.inception_resnet_v2`` defines it: Inception-v3's stem, Inception-A
(``mixed_5b``), 10 × block35, Reduction-A, 20 × block17, Reduction-B, 10 × block8, then a
1×1 convolution to 1536 channels. Each residual block adds ``scale ×`` its 1×1 up-projection
(with bias, no BN) to its input (:class:`~fastconv.layers.ScaledAdd`, Keras' ``Lambda``).
"""
from fastconv.applications._common import KerasArgs, build, channels, global_average
from fastconv.applications.inception import chain, concat, conv_bn, v3_stem
from fastconv.layers import Activation, AveragePooling2D, Conv2D, MaxPooling2D, ScaledAdd


def _mixed_5b(x):
    pool = conv_bn(AveragePooling2D(3, strides=1, padding="same")(x), 64, 1)
    return concat([conv_bn(x, 96, 1), chain(x, (48, 1), (64, 5)),
                   chain(x, (64, 1), (96, 3), (96, 3)), pool], "mixed_5b")


def _mixed_6a(x):
    return concat([conv_bn(x, 384, 3, 2, "valid"), chain(x, (256, 1), (256, 3),
                                                          (384, 3, 2, "valid")),
                   MaxPooling2D(3, strides=2)(x)], "mixed_6a")


def _mixed_7a(x):
    return concat([chain(x, (256, 1), (384, 3, 2, "valid")),
                   chain(x, (256, 1), (288, 3, 2, "valid")),
                   chain(x, (256, 1), (288, 3), (320, 3, 2, "valid")),
                   MaxPooling2D(3, strides=2)(x)], "mixed_7a")


BLOCK_BRANCHES = {
    "block35": [[(32, 1)], [(32, 1), (32, 3)], [(32, 1), (48, 3), (64, 3)]],
    "block17": [[(192, 1)], [(128, 1), (160, (1, 7)), (192, (7, 1))]],
    "block8": [[(192, 1)], [(192, 1), (224, (1, 3)), (256, (3, 1))]],
}


def _residual_block(x, block_type, index, scale, activation="relu"):
    """``activation(x + scale · conv1x1(concat(branches(x))))``."""
    name = f"{block_type}_{index}"
    mixed = concat([chain(x, *convs) for convs in BLOCK_BRANCHES[block_type]], f"{name}_mixed")
    up = Conv2D(channels(x), 1, name=f"{name}_conv")(mixed)
    x = ScaledAdd(scale, name=name)([x, up])
    return Activation(activation, name=f"{name}_ac")(x) if activation else x


def _features(x):
    x = _mixed_5b(v3_stem(x))
    for i in range(1, 11):
        x = _residual_block(x, "block35", i, 0.17)
    x = _mixed_6a(x)
    for i in range(1, 21):
        x = _residual_block(x, "block17", i, 0.1)
    x = _mixed_7a(x)
    for i in range(1, 10):
        x = _residual_block(x, "block8", i, 0.2)
    x = _residual_block(x, "block8", 10, 1.0, activation=None)
    return conv_bn(x, 1536, 1, name="conv_7b")


def InceptionResNetV2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax"):
    """Inception-ResNet-v2 of ``keras.applications``: 55,873,736 parameters, 26.4 GFLOPs
    (13.2 G multiply-adds) at 299×299. Inputs from 75×75."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("inception_resnet_v2", args, _features, global_average, default_size=299,
                 min_size=75)
