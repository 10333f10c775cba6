"""Keras-style layers on fastconv's kernels: ``from fastconv.layers import Conv2D, Dense, …``."""
from fastconv.layers.base import Input, InputLayer, Layer, SymbolicTensor, Weight
from fastconv.layers.convolutional import (Conv2D, DepthwiseConv2D, SeparableConv2D,
                                           ZeroPadding2D)
from fastconv.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from fastconv.layers.merging import Add, Concatenate, ScaledAdd
from fastconv.layers.normalization import BatchNormalization
from fastconv.layers.pooling import (AveragePooling2D, GlobalAveragePooling2D,
                                     GlobalMaxPooling2D, MaxPooling2D)

Convolution2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D = Conv2D, MaxPooling2D, AveragePooling2D, \
    GlobalAveragePooling2D

LAYERS = {cls.__name__: cls for cls in (
    InputLayer, Conv2D, DepthwiseConv2D, SeparableConv2D, ZeroPadding2D, Activation, Dense,
    Dropout, Flatten, Reshape, Add, Concatenate, ScaledAdd, BatchNormalization, AveragePooling2D,
    GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D)}


def add(inputs, **kwargs):
    """``add([a, b])``: the functional form of :class:`Add`."""
    return Add(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``concatenate([a, b])``: the functional form of :class:`Concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
