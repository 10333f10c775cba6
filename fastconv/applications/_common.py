"""What every application builder shares: Keras' arguments and their checks, the input, the
classifier head (or the global pooling that replaces it), and the channel axis."""
import numbers
from typing import NamedTuple

from fastconv import backend
from fastconv.layers import (Dense, GlobalAveragePooling2D, GlobalMaxPooling2D, Input,
                             SymbolicTensor)
from fastconv.models import Model

POOLINGS = {"avg": GlobalAveragePooling2D, "max": GlobalMaxPooling2D}


class KerasArgs(NamedTuple):
    """The arguments every ``keras.applications`` builder takes, in Keras' order."""
    include_top: bool
    weights: object
    input_tensor: SymbolicTensor
    input_shape: tuple
    pooling: str
    classes: int
    classifier_activation: str


def channel_axis():
    """The channel axis of a batch: -1 (channels_last) or 1 (channels_first)."""
    return -1 if backend.image_data_format() == "channels_last" else 1


def channels(x):
    """The number of channels of the symbolic image tensor ``x``."""
    return x.shape[-1] if backend.image_data_format() == "channels_last" else x.shape[0]


def image_size(shape):
    """``(height, width)`` of an image shape without the batch axis."""
    return tuple(shape[:2] if backend.image_data_format() == "channels_last" else shape[1:])


def build(name, args, features, top, default_size, min_size, default_channels=3):
    """A :class:`Model` named ``name``: ``features`` on the input, then ``top`` and the
    ``predictions`` layer, or without the top the global pooling that ``args.pooling`` names.

    ``features`` and ``top`` map a symbolic tensor to a symbolic tensor. Inputs are
    ``default_size`` square unless ``args`` give a shape; smaller than ``min_size`` is an error.
    """
    _check(args)
    inputs = _image_input(name, args, default_size, min_size, default_channels)
    x = features(inputs)
    if args.include_top:
        x = Dense(args.classes, activation=args.classifier_activation,
                  name="predictions")(top(x))
    elif args.pooling is not None:
        x = POOLINGS[args.pooling](name=f"{args.pooling}_pool")(x)
    return Model(_source(inputs), x, name=name)


def global_average(x):
    """The top of most ImageNet nets: global average pooling (then the classifier)."""
    return GlobalAveragePooling2D(name="avg_pool")(x)


def _check(args):
    if args.weights is not None:
        raise ValueError(f"weights={args.weights!r}: fastconv cannot download or ship "
                         f"pretrained weights; pass weights=None (random initialisation) and "
                         f"load trained weights from a .npz file with model.load_weights(path)")
    if args.pooling not in (None, *POOLINGS):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {args.pooling!r}")
    if args.include_top and (not isinstance(args.classes, numbers.Integral) or args.classes < 1):
        raise ValueError(f"classes must be a positive int, got {args.classes!r}")


def _image_input(name, args, default_size, min_size, default_channels):
    if args.input_tensor is not None:
        if not isinstance(args.input_tensor, SymbolicTensor):
            raise ValueError(f"input_tensor must be a symbolic tensor such as Input((224, 224, "
                             f"3)), got {type(args.input_tensor).__name__}")
        shape = args.input_tensor.shape
    elif args.input_shape is not None:
        shape = tuple(args.input_shape)
    elif backend.image_data_format() == "channels_last":
        shape = (default_size, default_size, default_channels)
    else:
        shape = (default_channels, default_size, default_size)
    if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
        raise ValueError(f"{name} takes images of a fixed size, (height, width, channels), got "
                         f"input shape {shape}")
    if min(image_size(shape)) < min_size:
        raise ValueError(f"{name} needs inputs of at least {min_size}x{min_size} pixels, got "
                         f"input shape {shape}")
    return args.input_tensor if args.input_tensor is not None else Input(shape)


def _source(x):
    """The graph input that the symbolic tensor ``x`` comes from."""
    while x.inputs:
        x = x.inputs[0]
    return x
