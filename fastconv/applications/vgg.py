"""VGG16 and VGG19 (Simonyan & Zisserman, 2014), layer for layer as ``keras.applications``
defines them: five blocks of 3×3 'same' convolutions with ReLU, each closed by a 2×2 max-pool,
then Flatten → fc1 4096 → fc2 4096 → predictions."""
from fastconv.applications._common import KerasArgs, build
from fastconv.layers import Conv2D, Dense, Flatten, MaxPooling2D

BLOCK_FILTERS = (64, 128, 256, 512, 512)


def _features(convs_per_block):
    def features(x):
        for block, (convs, filters) in enumerate(zip(convs_per_block, BLOCK_FILTERS), start=1):
            for i in range(1, convs + 1):
                x = Conv2D(filters, 3, padding="same", activation="relu",
                           name=f"block{block}_conv{i}")(x)
            x = MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
        return x
    return features


def _top(x):
    x = Flatten(name="flatten")(x)
    x = Dense(4096, activation="relu", name="fc1")(x)
    return Dense(4096, activation="relu", name="fc2")(x)


def _vgg(name, convs_per_block, args):
    return build(name, args, _features(convs_per_block), _top, default_size=224, min_size=32)


def VGG16(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax"):
    """VGG16: 2-2-3-3-3 convolutions; 138,357,544 parameters at 224×224 (Keras' count),
    30.9 GFLOPs (15.5 G multiply-adds) per image. Inputs from 32×32."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return _vgg("vgg16", (2, 2, 3, 3, 3), args)


def VGG19(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax"):
    """VGG19: 2-2-4-4-4 convolutions; 143,667,240 parameters at 224×224 (Keras' count),
    39.3 GFLOPs (19.6 G multiply-adds) per image. Inputs from 32×32."""
    args = KerasArgs(include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    return _vgg("vgg19", (2, 2, 4, 4, 4), args)
