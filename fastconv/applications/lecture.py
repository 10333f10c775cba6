"""The lecture's networks and training recipes, layer for layer.

- :func:`mnist_net` and :func:`cifar10_net`: the two notebooks' models (Adadelta, batch 512,
  ReduceLROnPlateau on val_acc, the notebooks' augmentation), with :data:`MNIST_RECIPE` and
  :data:`CIFAR10_RECIPE` holding the rest of each notebook's settings;
- :func:`summary_net`: the model whose ``summary()`` the lecture prints (93,322 parameters);
- :func:`example_25x25_net`: the worked example 25×25×3 → 11×11×16 → 6×6×32 → 1152 features.
"""
from dataclasses import dataclass, field

from fastconv import optimizers
from fastconv.callbacks import ReduceLROnPlateau
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential


def _stack(layers, name):
    model = Sequential(name=name)
    for layer in layers:
        model.add(layer)
    return model


def mnist_net(input_shape=(28, 28, 1), num_classes=10):
    """The MNIST notebook's net: five 3×3 convolutions (32…512), three 2×2 max-pools,
    dropout 0.20…0.50, dense 256 → 128 → classes."""
    return _stack([
        Conv2D(32, (3, 3), activation="relu", input_shape=input_shape),
        MaxPooling2D((2, 2)), Dropout(0.20),
        Conv2D(64, (3, 3), activation="relu", padding="same"),
        MaxPooling2D((2, 2)), Dropout(0.25),
        Conv2D(128, (3, 3), activation="relu", padding="same"),
        MaxPooling2D((2, 2)), Dropout(0.30),
        Conv2D(256, (3, 3), activation="relu", padding="same"), Dropout(0.40),
        Conv2D(512, (3, 3), activation="relu", padding="same"), Dropout(0.50),
        Flatten(),
        Dense(256, activation="relu"), Dropout(0.35),
        Dense(128, activation="relu"), Dropout(0.25),
        Dense(num_classes, activation="softmax"),
    ], "mnist_net")


def cifar10_net(input_shape=(32, 32, 3), num_classes=10):
    """The CIFAR-10 notebook's net: pairs of 3×3 convolutions (64, 128, 256) each followed by
    a 2×2 max-pool and dropout, dense 256 → 128 → classes."""
    return _stack([
        Conv2D(64, (3, 3), activation="relu", input_shape=input_shape),
        Conv2D(64, (3, 3), activation="relu"),
        MaxPooling2D((2, 2)), Dropout(0.25),
        Conv2D(128, (3, 3), activation="relu", padding="same"),
        Conv2D(128, (3, 3), activation="relu", padding="same"),
        MaxPooling2D((2, 2)), Dropout(0.25),
        Conv2D(256, (3, 3), activation="relu", padding="same"),
        Conv2D(256, (3, 3), activation="relu", padding="same"),
        MaxPooling2D((2, 2)), Dropout(0.35),
        Flatten(),
        Dense(256, activation="relu"), Dropout(0.35),
        Dense(128, activation="relu"), Dropout(0.25),
        Dense(num_classes, activation="softmax"),
    ], "cifar10_net")


def summary_net(input_shape=(28, 28, 1), num_classes=10):
    """The model of the lecture's ``summary()`` slide: 320 / 18,496 / 36,928 / 36,928 / 650
    parameters, 93,322 in all."""
    return _stack([
        Conv2D(32, (3, 3), activation="relu", input_shape=input_shape), MaxPooling2D((2, 2)),
        Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
        Conv2D(64, (3, 3), activation="relu"),
        Flatten(), Dense(64, activation="relu"), Dense(num_classes, activation="softmax"),
    ], "summary_net")


def example_25x25_net(num_classes=None):
    """The worked example: 25×25×3 → 5×5/2 conv, 16 filters → 11×11×16 → 3×3/2 conv with
    padding 1, 32 filters → 6×6×32 → 1152 features (→ a softmax over ``num_classes`` if given)."""
    layers = [Conv2D(16, (5, 5), strides=2, activation="relu", input_shape=(25, 25, 3)),
              Conv2D(32, (3, 3), strides=2, padding=1, activation="relu"), Flatten()]
    if num_classes:
        layers.append(Dense(num_classes, activation="softmax"))
    return _stack(layers, "example_25x25_net")


@dataclass
class Recipe:
    """A notebook's training settings: model builder, optimizer, batch, epochs, augmentation."""
    build: callable
    batch_size: int
    epochs: int
    augmentation: dict
    lr_monitor: dict = field(default_factory=lambda: dict(
        monitor="val_acc", factor=0.5, patience=5, verbose=1, min_lr=0.001))

    def optimizer(self):
        return optimizers.Adadelta()

    def callbacks(self):
        return [ReduceLROnPlateau(**self.lr_monitor)]


MNIST_RECIPE = Recipe(mnist_net, batch_size=512, epochs=3, augmentation=dict(
    rotation_range=5, zoom_range=0.2, width_shift_range=0.15, height_shift_range=0.15))
CIFAR10_RECIPE = Recipe(cifar10_net, batch_size=512, epochs=50, augmentation=dict(
    rotation_range=10, width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True))
