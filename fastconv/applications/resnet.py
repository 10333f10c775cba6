"""ResNet-34, ResNet-50 (He et al., 2015) and ResNeXt-50 32×4d (Xie et al., 2017) on the stem
and stage layout of ``keras.applications.resnet``: ZeroPadding2D(3) → 7×7/2 convolution → BN →
ReLU → ZeroPadding2D(1) → 3×3/2 max-pool, four stages of residual blocks (the first block of
stages 3–5 halves the size), and global average pooling before the classifier. Every
BatchNormalization has Keras' ε = 1.001e-5. A block's shortcut is a 1×1 convolution + BN where
the block changes the shape, the identity elsewhere.
"""
from fastconv.applications._common import (KerasArgs, build, channel_axis, channels,
                                            global_average)
from fastconv.layers import (Activation, Add, BatchNormalization, Conv2D, MaxPooling2D,
                             ZeroPadding2D)

BN_EPSILON = 1.001e-5


def _conv_bn(x, filters, kernel_size, name, strides=1, padding="valid", use_bias=False,
             groups=1, relu=True):
    """Conv2D → BatchNormalization → ReLU (unless ``relu=False``), with Keras' ResNet names."""
    x = Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
               groups=groups, name=f"{name}_conv")(x)
    x = BatchNormalization(axis=channel_axis(), epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return Activation("relu", name=f"{name}_relu")(x) if relu else x


def _residual(x, out_channels, stride, name, use_bias, branch):
    """``relu(shortcut(x) + branch(x))``."""
    shortcut = x
    if stride != 1 or channels(x) != out_channels:
        shortcut = _conv_bn(x, out_channels, 1, f"{name}_0", strides=stride, use_bias=use_bias,
                            relu=False)
    x = Add(name=f"{name}_add")([shortcut, branch(x)])
    return Activation("relu", name=f"{name}_out")(x)


def _padded_3x3(x, filters, name, strides=1, use_bias=False, groups=1, relu=True):
    """ZeroPadding2D(1) → 3×3 convolution (stride on the 3×3, as in the paper) → BN → ReLU."""
    x = ZeroPadding2D(1, name=f"{name}_pad")(x)
    return _conv_bn(x, filters, 3, name, strides=strides, use_bias=use_bias, groups=groups,
                    relu=relu)


def basic_block(x, filters, stride, name, use_bias=False):
    """ResNet-18/34's block: two 3×3 convolutions of ``filters`` channels."""
    def branch(x):
        x = _padded_3x3(x, filters, f"{name}_1", strides=stride, use_bias=use_bias)
        return _padded_3x3(x, filters, f"{name}_2", use_bias=use_bias, relu=False)
    return _residual(x, filters, stride, name, use_bias, branch)


def bottleneck_block(x, filters, stride, name, use_bias=True):
    """Keras' ``block1``: 1×1 (carrying the stride) → 3×3 'same' → 1×1 to 4·``filters``."""
    def branch(x):
        x = _conv_bn(x, filters, 1, f"{name}_1", strides=stride, use_bias=use_bias)
        x = _conv_bn(x, filters, 3, f"{name}_2", padding="same", use_bias=use_bias)
        return _conv_bn(x, 4 * filters, 1, f"{name}_3", use_bias=use_bias, relu=False)
    return _residual(x, 4 * filters, stride, name, use_bias, branch)


def grouped_block(x, filters, stride, name, use_bias=False, groups=32):
    """keras_applications' ResNeXt ``block3``: 1×1 → padded 3×3 in 32 groups (carrying the
    stride) → 1×1 to 2·``filters`` channels. Keras writes the grouped 3×3 as a depthwise
    convolution and a sum over each group, with the same weights as ``Conv2D(groups=32)``."""
    def branch(x):
        x = _conv_bn(x, filters, 1, f"{name}_1", use_bias=use_bias)
        x = _padded_3x3(x, filters, f"{name}_2", strides=stride, use_bias=use_bias,
                        groups=groups)
        return _conv_bn(x, 64 // groups * filters, 1, f"{name}_3", use_bias=use_bias,
                        relu=False)
    return _residual(x, 64 // groups * filters, stride, name, use_bias, branch)


def _features(block, stage_filters, stage_blocks, use_bias):
    def features(x):
        x = ZeroPadding2D(3, name="conv1_pad")(x)
        x = _conv_bn(x, 64, 7, "conv1", strides=2, use_bias=use_bias)
        x = ZeroPadding2D(1, name="pool1_pad")(x)
        x = MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        for stage, (filters, blocks) in enumerate(zip(stage_filters, stage_blocks), start=2):
            for i in range(1, blocks + 1):
                stride = 2 if stage > 2 and i == 1 else 1
                x = block(x, filters, stride, f"conv{stage}_block{i}", use_bias=use_bias)
        return x
    return features


def _resnet(name, block, stage_filters, use_bias, args):
    features = _features(block, stage_filters, (3, 4, 6, 3), use_bias)
    return build(name, args, features, global_average, default_size=224, min_size=32)


def ResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax"):
    """ResNet-34 as the paper's Table 1 and torchvision's ``resnet34`` define it: basic blocks
    3-4-6-3 of 64…512 channels, convolutions without bias, projection shortcuts only where the
    shape changes. 21,814,696 parameters in Keras' count: torchvision's 21,797,672 plus the
    17,024 BN moving statistics. 7.34 GFLOPs (3.67 G multiply-adds; the paper: 3.6 G) at
    224×224; inputs from 32×32."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return _resnet("resnet34", basic_block, (64, 128, 256, 512), False, args)


def ResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax"):
    """ResNet-50 of ``keras.applications``: bottleneck blocks 3-4-6-3, convolutions with bias,
    25,636,712 parameters. 7.75 GFLOPs at 224×224 (``model.flops()``): 3.88 G multiply-adds,
    3.86 G of them in convolutions and the classifier, the paper's "3.8 × 10⁹ FLOPs". Keras,
    like the paper, strides the first 1×1 convolution of a block; torchvision's "v1.5" strides
    the 3×3 instead, which makes the often quoted 4.1 G with the same parameters. Inputs from
    32×32."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return _resnet("resnet50", bottleneck_block, (64, 128, 256, 512), True, args)


def ResNeXt50(include_top=True, weights=None, input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax"):
    """ResNeXt-50 (32×4d) of keras_applications / keras-contrib: grouped bottleneck blocks
    3-4-6-3 with cardinality 32, convolutions without bias, 25,097,128 parameters (Keras'
    count). 8.51 GFLOPs (4.26 G multiply-adds; the paper: 4.2 G) at 224×224; inputs from
    32×32."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return _resnet("resnext50", grouped_block, (128, 256, 512, 1024), False, args)
