"""Keras-shaped dataset loaders: :mod:`~fastconv.datasets.mnist` and
:mod:`~fastconv.datasets.cifar10`, each with ``load_data(path=None)`` and ``CLASS_NAMES``.

>>> from fastconv.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()

Where the files are looked for, in order (the first folder holding all of them wins):

1. ``path``, if given: a folder holding the files directly or in the dataset's subfolder
   (``mnist/``; ``cifar10/`` or ``cifar-10-batches-bin/``). Nothing else is searched: a
   ``path`` without the files is an error.
2. ``$FASTCONV_DATA``, the same way (e.g. ``$FASTCONV_DATA/mnist/``, ``$FASTCONV_DATA/cifar10/``).
3. MNIST only: the copy shipped inside the package.
4. The download cache: ``$FASTCONV_CACHE``, else ``$XDG_CACHE_HOME/fastconv``, else
   ``~/.cache/fastconv``, in subfolder ``mnist/`` or ``cifar10/``.
5. A download from the official mirrors into that cache, unless ``FASTCONV_OFFLINE=1``. It is
   written to a temporary file and renamed into place only once its checksum matches.

If all fail, :class:`DatasetNotFoundError` (a ``FileNotFoundError``) lists the places searched
and how to supply the files.

Each file may be stored as is (``train-images-idx3-ubyte``, ``data_batch_1.bin``) or
gzip-compressed (``train-images-idx3-ubyte.gz``, ``data_batch_1.bin.gz``). Every load checks the
layout and the sha256 of the (decompressed) content: a damaged or modified file raises
:class:`CorruptDatasetError` (a ``ValueError``) naming the file, never returns wrong arrays.
"""
from fastconv.datasets import cifar10, mnist
from fastconv.datasets._files import CorruptDatasetError, DatasetNotFoundError

__all__ = ["CorruptDatasetError", "DatasetNotFoundError", "cifar10", "mnist"]
