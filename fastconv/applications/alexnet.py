"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) as the paper and Caffe's ``bvlc_alexnet``
define it: five convolutions with ReLU (conv2, conv4 and conv5 in two groups, the paper's two
GPUs), 3×3/2 max-pools after conv1, conv2 and conv5, then fc6 4096 → fc7 4096 with dropout
0.5 after each. Local response normalisation is left out (it has no parameters)."""
from fastconv.applications._common import KerasArgs, build
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D

CONVS = [  # filters, kernel, strides, padding, groups, max-pool after
    (96, 11, 4, "valid", 1, True),
    (256, 5, 1, "same", 2, True),
    (384, 3, 1, "same", 1, False),
    (384, 3, 1, "same", 2, False),
    (256, 3, 1, "same", 2, True),
]


def _features(x):
    for i, (filters, kernel, strides, padding, groups, pool) in enumerate(CONVS, start=1):
        x = Conv2D(filters, kernel, strides=strides, padding=padding, groups=groups,
                   activation="relu", name=f"conv{i}")(x)
        if pool:
            x = MaxPooling2D(3, strides=2, name=f"pool{i}")(x)
    return x


def _top(x):
    x = Flatten(name="flatten")(x)
    for name in ("fc6", "fc7"):
        x = Dropout(0.5, name=f"drop{name[2:]}")(Dense(4096, activation="relu", name=name)(x))
    return x


def AlexNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax"):
    """AlexNet at its true input size, 227×227 (the paper's "224" does not give its 55×55
    maps): 60,965,224 parameters (the paper's "60 million"), 1.45 GFLOPs (0.72 G multiply-adds).
    Inputs from 67×67. (Without the groups — the single-tower form in many tutorials — it
    would have 62,378,344.)"""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return build("alexnet", args, _features, _top, default_size=227, min_size=67)
