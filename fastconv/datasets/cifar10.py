"""CIFAR-10 32x32 colour images in 10 classes, as ``keras.datasets.cifar10``.

>>> from fastconv.datasets import cifar10
>>> (x_train, y_train), (x_test, y_test) = cifar10.load_data()
>>> x_train.shape, y_train.shape, cifar10.CLASS_NAMES[y_train[0, 0]]
((50000, 32, 32, 3), (50000, 1), 'frog')

Reads the binary version: ``data_batch_1.bin`` … ``data_batch_5.bin`` and ``test_batch.bin``,
each plain or gzip-compressed (``.bin.gz``). They are not shipped with fastconv;
:mod:`fastconv.datasets` says where they are looked for (the download is the official
``cifar-10-binary.tar.gz``, 162 MiB).
"""
import numpy as np

from fastconv import backend
from fastconv.datasets import _files

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")

_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
_TAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_TAR_FOLDER = "cifar-10-batches-bin"
# name: sha256 of the .bin content
_SHA256 = {
    "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}
_RECORDS = 10000               # per file
_RECORD = 1 + 3 * 32 * 32      # a label byte, then the R, G and B planes, each 32x32 row-major


def _download(folder, names):
    _files.fetch_from_archive(_URL, _TAR_MD5, folder,
                              {f"{_TAR_FOLDER}/{name}": _SHA256[name] for name in names})


_DATASET = _files.Dataset("CIFAR-10", ("cifar10", _TAR_FOLDER), tuple(_SHA256), _download)


def load_data(path=None):
    """``((x_train, y_train), (x_test, y_test))``: uint8 images and uint8 labels ``(N, 1)``,
    with N = 50000 and 10000.

    Images are ``(N, 32, 32, 3)``, or ``(N, 3, 32, 32)`` when
    ``fastconv.backend.image_data_format()`` is 'channels_first'. ``path``: a folder holding
    the files, directly or in ``cifar10/`` or ``cifar-10-batches-bin/``; by default they are
    looked for as :mod:`fastconv.datasets` describes.
    """
    files = _files.locate(_DATASET, path)
    channels_last = backend.image_data_format() == "channels_last"
    train = [files[f"data_batch_{i}.bin"] for i in range(1, 6)]
    return _load(train, channels_last), _load([files["test_batch.bin"]], channels_last)


def _load(paths, channels_last):
    n = _RECORDS * len(paths)
    x = np.empty((n, 32, 32, 3) if channels_last else (n, 3, 32, 32), np.uint8)
    y = np.empty((n, 1), np.uint8)
    for i, path in enumerate(paths):
        name = path.name.removesuffix(".gz")
        images, labels = _files.read(path, _SHA256[name], _parse_batch)
        rows = slice(i * _RECORDS, (i + 1) * _RECORDS)
        x[rows] = images.transpose(0, 2, 3, 1) if channels_last else images
        y[rows, 0] = labels
    return x, y


def _parse_batch(content):
    """(images (N, 3, 32, 32), labels (N,)): read-only views of one batch file's content."""
    if len(content) != _RECORDS * _RECORD:
        raise ValueError(f"{len(content)} bytes, expected {_RECORDS * _RECORD} "
                         f"({_RECORDS} records of {_RECORD} bytes)")
    records = np.frombuffer(content, np.uint8).reshape(_RECORDS, _RECORD)
    _files.check_labels(records[:, 0], len(CLASS_NAMES))
    return records[:, 1:].reshape(_RECORDS, 3, 32, 32), records[:, 0]
