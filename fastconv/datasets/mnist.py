"""MNIST handwritten digits, as ``keras.datasets.mnist``.

>>> from fastconv.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
>>> x_train.shape, x_train.dtype, y_train[:4]
((60000, 28, 28), dtype('uint8'), array([5, 0, 4, 1], dtype=uint8))

The four original IDX files ship with fastconv; :mod:`fastconv.datasets` says where else they
are looked for.
"""
import struct
from math import prod
from pathlib import Path

import numpy as np

from fastconv.datasets import _files

CLASS_NAMES = tuple("0123456789")

_MIRRORS = ("https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/")
# name: (sha256 of the original .gz file, sha256 of its content)
_SHA256 = {
    "train-images-idx3-ubyte": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


def _download(folder, names):
    for name in names:
        _files.fetch([mirror + f"{name}.gz" for mirror in _MIRRORS], folder / f"{name}.gz",
                     "sha256", _SHA256[name][0])


_DATASET = _files.Dataset("MNIST", ("mnist",), tuple(_SHA256), _download,
                          packaged=Path(__file__).parent / "data" / "mnist")


def load_data(path=None):
    """``((x_train, y_train), (x_test, y_test))``: uint8 images ``(N, 28, 28)`` and labels
    ``(N,)``, with N = 60000 and 10000.

    ``path``: a folder holding the files (``train-images-idx3-ubyte.gz`` …), directly or in
    ``mnist/``; by default they are looked for as :mod:`fastconv.datasets` describes.
    """
    files = _files.locate(_DATASET, path)
    return ((_read(files, "train-images-idx3-ubyte", (60000, 28, 28)),
             _read(files, "train-labels-idx1-ubyte", (60000,))),
            (_read(files, "t10k-images-idx3-ubyte", (10000, 28, 28)),
             _read(files, "t10k-labels-idx1-ubyte", (10000,))))


def _read(files, name, shape):
    return _files.read(files[name], _SHA256[name][1], lambda content: _parse_idx(content, shape))


def _parse_idx(content, shape):
    """The uint8 array an IDX file holds, which must have ``shape`` (1-D: labels)."""
    magic = 0x800 | len(shape)  # 0x08: unsigned bytes, then the number of dimensions
    header = 4 * (1 + len(shape))
    if len(content) < header:
        raise ValueError(f"only {len(content)} bytes, too short for an IDX header")
    found, *dims = struct.unpack(f">{1 + len(shape)}I", content[:header])
    if found != magic:
        raise ValueError(f"IDX magic number is 0x{found:08x}, expected 0x{magic:08x}")
    if tuple(dims) != shape:
        raise ValueError(f"IDX header gives shape {tuple(dims)}, expected {shape}")
    if len(content) != header + prod(shape):
        raise ValueError(f"{len(content)} bytes, expected {header + prod(shape)} "
                         f"(a {header}-byte header and {shape} uint8)")
    array = np.frombuffer(content, np.uint8, offset=header).reshape(shape).copy()
    if len(shape) == 1:
        _files.check_labels(array, len(CLASS_NAMES))
    return array
