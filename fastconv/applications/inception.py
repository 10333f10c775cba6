"""Inception-v1 (GoogLeNet; Szegedy et al., 2014), Inception-v3 (Szegedy et al., 2015) and
Inception-v4 (Szegedy et al., 2016): parallel towers of convolutions joined by Concatenate.

Inception-v3 follows ``keras.applications.inception_v3`` layer for layer; Inception-v4 and
Inception-ResNet-v2 (:mod:`fastconv.applications.inception_resnet`) share its ``conv2d_bn``
(:func:`conv_bn`, :func:`chain`) and Inception-ResNet-v2 its stem (:func:`v3_stem`).
"""
from fastconv.applications._common import KerasArgs, build, channel_axis, global_average
from fastconv.layers import (Activation, AveragePooling2D, BatchNormalization, Concatenate,
                             Conv2D, Dropout, MaxPooling2D)


def conv_bn(x, filters, kernel_size, strides=1, padding="same", name=None):
    """Keras' Inception ``conv2d_bn``: convolution without bias → BatchNormalization without
    scale (ReLU follows) → ReLU."""
    x = Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
               name=name and f"{name}_conv")(x)
    x = BatchNormalization(axis=channel_axis(), scale=False, name=name and f"{name}_bn")(x)
    return Activation("relu", name=name)(x)


def concat(branches, name=None):
    return Concatenate(axis=channel_axis(), name=name)(branches)


def chain(x, *convs):
    """``conv_bn`` applied in turn for each ``(filters, kernel_size[, strides, padding])``."""
    for conv in convs:
        x = conv_bn(x, *conv)
    return x


def _pool_branch(x, filters):
    """3×3 average pooling ('same', stride 1) → 1×1 ``conv_bn``."""
    return conv_bn(AveragePooling2D(3, strides=1, padding="same")(x), filters, 1)


def _reduce_pool(x):
    """3×3/2 max-pool, 'valid'."""
    return MaxPooling2D(3, strides=2)(x)


def v3_stem(x):
    """299×299×3 → 35×35×192: five convolutions and two 3×3/2 max-pools."""
    x = chain(x, (32, 3, 2, "valid"), (32, 3, 1, "valid"), (64, 3))
    x = _reduce_pool(x)
    x = chain(x, (80, 1, 1, "valid"), (192, 3, 1, "valid"))
    return _reduce_pool(x)


# ----------------------------------------------------------------------------- Inception-v3
def _v3_block_a(x, pool_filters, name):
    return concat([chain(x, (64, 1)), chain(x, (48, 1), (64, 5)),
                   chain(x, (64, 1), (96, 3), (96, 3)), _pool_branch(x, pool_filters)], name)


def _v3_reduction_a(x):
    return concat([chain(x, (384, 3, 2, "valid")),
                   chain(x, (64, 1), (96, 3), (96, 3, 2, "valid")), _reduce_pool(x)], "mixed3")


def _v3_block_b(x, width, name):
    return concat([chain(x, (192, 1)),
                   chain(x, (width, 1), (width, (1, 7)), (192, (7, 1))),
                   chain(x, (width, 1), (width, (7, 1)), (width, (1, 7)), (width, (7, 1)),
                          (192, (1, 7))),
                   _pool_branch(x, 192)], name)


def _v3_reduction_b(x):
    return concat([chain(x, (192, 1), (320, 3, 2, "valid")),
                   chain(x, (192, 1), (192, (1, 7)), (192, (7, 1)), (192, 3, 2, "valid")),
                   _reduce_pool(x)], "mixed8")


def _split_3x3(x, name=None):
    """1×3 and 3×1 convolutions side by side."""
    return concat([conv_bn(x, 384, (1, 3)), conv_bn(x, 384, (3, 1))], name)


def _v3_block_c(x, i):
    return concat([chain(x, (320, 1)), _split_3x3(conv_bn(x, 384, 1), f"mixed9_{i}"),
                   _split_3x3(chain(x, (448, 1), (384, 3))), _pool_branch(x, 192)],
                  f"mixed{9 + i}")


def _v3_features(x):
    x = v3_stem(x)
    for i, pool_filters in enumerate((32, 64, 64)):
        x = _v3_block_a(x, pool_filters, f"mixed{i}")
    x = _v3_reduction_a(x)
    for i, width in enumerate((128, 160, 160, 192)):
        x = _v3_block_b(x, width, f"mixed{4 + i}")
    x = _v3_reduction_b(x)
    for i in range(2):
        x = _v3_block_c(x, i)
    return x


def InceptionV3(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax"):
    """Inception-v3 of ``keras.applications``: 23,851,784 parameters, 11.5 GFLOPs
    (5.7 G multiply-adds) at 299×299. Inputs from 75×75."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("inception_v3", args, _v3_features, global_average, default_size=299,
                 min_size=75)


# ----------------------------------------------------------------------------- Inception-v4
def _v4_stem(x):
    """299×299×3 → 35×35×384, with the paper's parallel pool/convolution reductions."""
    x = chain(x, (32, 3, 2, "valid"), (32, 3, 1, "valid"), (64, 3))
    x = concat([_reduce_pool(x), conv_bn(x, 96, 3, 2, "valid")])
    x = concat([chain(x, (64, 1), (96, 3, 1, "valid")),
                chain(x, (64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3, 1, "valid"))])
    return concat([conv_bn(x, 192, 3, 2, "valid"), _reduce_pool(x)])


def _v4_block_a(x):
    return concat([chain(x, (96, 1)), chain(x, (64, 1), (96, 3)),
                   chain(x, (64, 1), (96, 3), (96, 3)), _pool_branch(x, 96)])


def _v4_reduction_a(x):
    return concat([conv_bn(x, 384, 3, 2, "valid"),
                   chain(x, (192, 1), (224, 3), (256, 3, 2, "valid")), _reduce_pool(x)])


def _v4_block_b(x):
    return concat([chain(x, (384, 1)), chain(x, (192, 1), (224, (1, 7)), (256, (7, 1))),
                   chain(x, (192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)),
                          (256, (1, 7))),
                   _pool_branch(x, 128)])


def _v4_reduction_b(x):
    return concat([chain(x, (192, 1), (192, 3, 2, "valid")),
                   chain(x, (256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2, "valid")),
                   _reduce_pool(x)])


def _pair_1x3_3x1(x):
    return concat([conv_bn(x, 256, (1, 3)), conv_bn(x, 256, (3, 1))])


def _v4_block_c(x):
    return concat([chain(x, (256, 1)), _pair_1x3_3x1(conv_bn(x, 384, 1)),
                   _pair_1x3_3x1(chain(x, (384, 1), (448, (3, 1)), (512, (1, 3)))),
                   _pool_branch(x, 256)])


def _v4_features(x):
    x = _v4_stem(x)
    for blocks, block, reduction in ((4, _v4_block_a, _v4_reduction_a),
                                     (7, _v4_block_b, _v4_reduction_b),
                                     (3, _v4_block_c, None)):
        for _ in range(blocks):
            x = block(x)
        x = reduction(x) if reduction else x
    return x


def _v4_top(x):
    return Dropout(0.2)(global_average(x))


def InceptionV4(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax"):
    """Inception-v4 as the paper's figures and the common Keras port (kentsommer/keras-
    inceptionV4, TF-slim's layout) define it: ``conv2d_bn`` without bias and BN scale, 4 × A,
    7 × B, 3 × C blocks, global average pooling and dropout 0.2 before the classifier.
    42,711,400 parameters in Keras' count, the lecture's "43 M" (the port's default 1001
    classes make 42,712,937; PyTorch ports, whose BN has a scale and whose moving statistics
    are no parameters, count the same network as 42,679,816). 24.6 GFLOPs (12.3 G
    multiply-adds) at 299×299. Inputs from 75×75."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("inception_v4", args, _v4_features, _v4_top, default_size=299, min_size=75)


# ----------------------------------------------------------------------------- Inception-v1
def _conv_relu(x, filters, kernel_size, strides=1):
    return Conv2D(filters, kernel_size, strides=strides, padding="same", activation="relu")(x)


def _v1_module(x, n1x1, reduce3x3, n3x3, reduce5x5, n5x5, pool_proj, name):
    """The paper's Inception module: 1×1 | 1×1 → 3×3 | 1×1 → 5×5 | 3×3 max-pool → 1×1."""
    return concat([_conv_relu(x, n1x1, 1),
                   _conv_relu(_conv_relu(x, reduce3x3, 1), n3x3, 3),
                   _conv_relu(_conv_relu(x, reduce5x5, 1), n5x5, 5),
                   _conv_relu(MaxPooling2D(3, strides=1, padding="same")(x), pool_proj, 1)],
                  f"inception_{name}")


V1_STAGES = ({"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64)},
             {"4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
              "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
              "4e": (256, 160, 320, 32, 128, 128)},
             {"5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128)})


def _v1_features(x):
    x = _conv_relu(x, 64, 7, strides=2)
    x = MaxPooling2D(3, strides=2, padding="same")(x)
    x = _conv_relu(_conv_relu(x, 64, 1), 192, 3)
    for stage in V1_STAGES:
        x = MaxPooling2D(3, strides=2, padding="same")(x)
        for name, filters in stage.items():
            x = _v1_module(x, *filters, name)
    return x


def _v1_top(x):
    return Dropout(0.4)(global_average(x))


def InceptionV1(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax"):
    """GoogLeNet as the paper's Table 1 (and Caffe's ``bvlc_googlenet``) defines it, without
    the auxiliary classifiers used only in training and without local response normalisation
    (it has no parameters): convolutions with bias and ReLU, no batch normalisation, 'same'
    paddings, global average pooling and dropout 0.4 before the classifier. 6,998,552
    parameters (the paper: about 6.8 M), 3.2 GFLOPs (1.6 G multiply-adds) at 224×224.
    Inputs from 32×32."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("inception_v1", args, _v1_features, _v1_top, default_size=224, min_size=32)


GoogLeNet = InceptionV1
