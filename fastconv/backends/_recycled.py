"""Large host outputs recycled once nothing holds them.

A new NumPy array of several MiB gets fresh pages (glibc maps them from 32 MiB on, and returns
smaller freed blocks to the system too when they sit at the top of its heap), and the kernel
zeroes each page on first touch, compacting memory for the huge pages NumPy asks for: a 44 MB
output cost 5.7 ms of page faults on top of a 3.9 ms fill here, and cifar1's 29.5 MB forward
ran at 52 to 97 GFLOP/s from one run to the next (bench/NOTES.md). So an output of ``BOUND``
bytes or more is taken from the arrays of its shape and dtype that no one references any more
(their data can be seen by no one), as CuPy's memory pool does on the GPU. Up to ``PER_KIND``
arrays of each of the last ``KEEP`` kinds stay allocated between calls: a loop ``y = f(x)``
still holds the last result while ``f`` makes the next one, and a training step holds up to
four activations of one shape at once (the MNIST net's first layer: its output, the pooling's
and the ReLU's gradients). An array is added only when every kept one of its kind is in use,
so what stays allocated is at most what the process held at once. With 4 kinds of 2 the
training steps' largest arrays came back as fresh pages on every step; 16 kinds of 4 made the
CIFAR-10 net's step 1.2x faster (bench/NOTES.md).
"""
import math
import sys

import numpy as np

BOUND = 4 << 20
KEEP, PER_KIND = 16, 4
_kept = {}   # (shape, dtype) -> the last arrays of that kind; least recently used kind first


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, recycled from ``BOUND`` bytes on."""
    dtype = np.dtype(dtype)
    shape = tuple(map(int, shape))
    if math.prod(shape) * dtype.itemsize < BOUND:
        return np.empty(shape, dtype)
    key = (shape, dtype)
    kept = _kept.pop(key, [])
    for a in kept:
        if sys.getrefcount(a) == 3:   # held by kept, a and the argument only
            break
    else:
        a = np.empty(shape, dtype)
        kept = (kept + [a])[-PER_KIND:]
    _kept[key] = kept
    while len(_kept) > KEEP:
        del _kept[next(iter(_kept))]
    return a


def clear():
    """Let go of the kept arrays (those still referenced elsewhere live on)."""
    _kept.clear()
