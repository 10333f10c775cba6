"""Keras' ``backend`` module, as far as model code uses it: the image data format, the float
type, the fuzz factor and ``clear_session`` (which restarts automatic layer names).

>>> from fastconv import backend as K
>>> K.image_data_format()
'channels_last'
"""
import os

from fastconv._shapes import check_data_format

_settings = {"image_data_format": os.environ.get("FASTCONV_IMAGE_DATA_FORMAT", "channels_last"),
             "floatx": "float32", "epsilon": 1e-7}
_name_counts = {}


def image_data_format():
    """'channels_last' (NHWC, the default) or 'channels_first' (NCHW)."""
    return _settings["image_data_format"]


def set_image_data_format(data_format):
    check_data_format(data_format)
    _settings["image_data_format"] = data_format


def floatx():
    """The float type of new layers' weights: 'float32' unless set."""
    return _settings["floatx"]


def set_floatx(value):
    if value not in ("float32", "float64"):
        raise ValueError(f"floatx must be 'float32' or 'float64', got {value!r}")
    _settings["floatx"] = value


def epsilon():
    """The fuzz factor of losses and optimizers (1e-7, as in Keras)."""
    return _settings["epsilon"]


def unique_name(prefix):
    """'conv2d', then 'conv2d_1', 'conv2d_2', … (Keras' automatic layer names)."""
    count = _name_counts.get(prefix, 0)
    _name_counts[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def clear_session():
    """Restart automatic layer names, as a fresh Keras session does."""
    _name_counts.clear()
