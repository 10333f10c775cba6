"""LeNet-5 (LeCun et al., 1998) in its common modern form."""
from fastconv.layers import AveragePooling2D, Conv2D, Dense, Flatten, ZeroPadding2D
from fastconv.models import Sequential


def LeNet5(input_shape=(32, 32, 1), classes=10, activation="tanh"):
    """C1 6@5×5 → S2 avg-pool → C3 16@5×5 → S4 avg-pool → C5 120@5×5 → F6 84 → softmax.

    Every C3 map sees all six S2 maps (the paper's sparse C3 table is dropped), which gives
    61,706 parameters (the paper: about 60 K). Inputs smaller than 32×32, such as MNIST's
    28×28, are zero-padded to 32×32 as in the paper.
    """
    h, w, c = input_shape
    if h > 32 or w > 32:
        raise ValueError(f"LeNet-5 takes images up to 32x32, got {input_shape}")
    model = Sequential(name="lenet5")
    if (h, w) == (32, 32):
        model.add(Conv2D(6, 5, activation=activation, input_shape=input_shape))
    else:
        model.add(ZeroPadding2D((((32 - h) // 2, (33 - h) // 2), ((32 - w) // 2, (33 - w) // 2)),
                                input_shape=input_shape))
        model.add(Conv2D(6, 5, activation=activation))
    for layer in (AveragePooling2D(2), Conv2D(16, 5, activation=activation), AveragePooling2D(2),
                  Conv2D(120, 5, activation=activation), Flatten(),
                  Dense(84, activation=activation), Dense(classes, activation="softmax")):
        model.add(layer)
    return model
