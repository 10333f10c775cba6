"""Xception (Chollet, 2016), layer for layer as ``keras.applications.xception`` defines it:
entry flow (two convolutions, three strided separable blocks with 1×1/2 convolution
shortcuts), middle flow (8 residual blocks of three 728-channel separable convolutions), exit
flow. Convolutions have no bias; BatchNormalization has Keras' defaults.
"""
from fastconv.applications._common import KerasArgs, build, channel_axis, global_average
from fastconv.layers import (Activation, Add, BatchNormalization, Conv2D, MaxPooling2D,
                             SeparableConv2D)


def _bn(x, name):
    return BatchNormalization(axis=channel_axis(), name=f"{name}_bn")(x)


def _conv_bn_relu(x, filters, strides, name):
    x = Conv2D(filters, 3, strides=strides, use_bias=False, name=name)(x)
    return Activation("relu", name=f"{name}_act")(_bn(x, name))


def _separable_bn(x, filters, name, relu_before=True):
    """[ReLU →] 3×3 separable convolution ('same') → BN."""
    if relu_before:
        x = Activation("relu", name=f"{name}_act")(x)
    return _bn(SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x), name)


def _downsampling_block(x, block, filters, out_filters=None, relu_first=True):
    """Two separable convolutions (``filters``, then ``out_filters``) and a 3×3/2 max-pool,
    plus a 1×1/2 convolution shortcut."""
    out_filters = out_filters or filters
    shortcut = Conv2D(out_filters, 1, strides=2, padding="same", use_bias=False,
                      name=f"block{block}_shortcut")(x)
    shortcut = _bn(shortcut, f"block{block}_shortcut")
    x = _separable_bn(x, filters, f"block{block}_sepconv1", relu_before=relu_first)
    x = _separable_bn(x, out_filters, f"block{block}_sepconv2")
    x = MaxPooling2D(3, strides=2, padding="same", name=f"block{block}_pool")(x)
    return Add(name=f"block{block}_add")([x, shortcut])


def _middle_block(x, block):
    residual = x
    for i in range(1, 4):
        x = _separable_bn(x, 728, f"block{block}_sepconv{i}")
    return Add(name=f"block{block}_add")([x, residual])


def _features(x):
    x = _conv_bn_relu(x, 32, 2, "block1_conv1")
    x = _conv_bn_relu(x, 64, 1, "block1_conv2")
    x = _downsampling_block(x, 2, 128, relu_first=False)
    x = _downsampling_block(x, 3, 256)
    x = _downsampling_block(x, 4, 728)
    for block in range(5, 13):
        x = _middle_block(x, block)
    x = _downsampling_block(x, 13, 728, 1024)
    for i, filters in enumerate((1536, 2048), start=1):
        x = _separable_bn(x, filters, f"block14_sepconv{i}", relu_before=False)
        x = Activation("relu", name=f"block14_sepconv{i}_act")(x)
    return x


def Xception(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax"):
    """Xception of ``keras.applications``: 22,910,480 parameters, 16.8 GFLOPs (8.4 G
    multiply-adds) at 299×299. Inputs from 71×71."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("xception", args, _features, global_average, default_size=299, min_size=71)
