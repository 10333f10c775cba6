"""LeNet-5 (LeCun et al., 1998) in its common modern form."""
from fastconv.applications._common import KerasArgs, build, image_size
from fastconv.layers import AveragePooling2D, Conv2D, Dense, Flatten, ZeroPadding2D

SIZE = 32


def _features(activation):
    def features(x):
        h, w = image_size(x.shape)
        if h > SIZE or w > SIZE:
            raise ValueError(f"LeNet-5 takes images up to {SIZE}x{SIZE}, got input shape "
                             f"{x.shape}")
        if (h, w) != (SIZE, SIZE):
            x = ZeroPadding2D((((SIZE - h) // 2, (SIZE + 1 - h) // 2),
                               ((SIZE - w) // 2, (SIZE + 1 - w) // 2)))(x)
        for layer in (Conv2D(6, 5, activation=activation), AveragePooling2D(2),
                      Conv2D(16, 5, activation=activation), AveragePooling2D(2)):
            x = layer(x)
        return Conv2D(120, 5, activation=activation)(x)
    return features


def _top(activation):
    def top(x):
        return Dense(84, activation=activation, name="f6")(Flatten()(x))
    return top


def LeNet5(input_shape=None, classes=10, activation="tanh", include_top=True, weights=None,
           input_tensor=None, pooling=None, classifier_activation="softmax"):
    """C1 6@5×5 → S2 avg-pool → C3 16@5×5 → S4 avg-pool → C5 120@5×5 → F6 84 → classes.

    Every C3 map sees all six S2 maps (the paper's sparse C3 table is dropped), which gives
    61,706 parameters (the paper: about 60 K), 0.84 MFLOPs per 32×32 image. Inputs default
    to 32×32×1; smaller ones, such as MNIST's 28×28, are zero-padded to 32×32 as in the paper.
    ``input_shape`` and ``classes`` come first (this builder predates Keras' argument order);
    without the top the output is C5's 1×1×120 (or its pooling).
    """
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("lenet5", args, _features(activation), _top(activation), default_size=SIZE,
                 min_size=1, default_channels=1)
