"""When a Cython kernel streams its output to memory (non-temporal stores, ``fc_stream.h``)."""

FRESH = 32 << 20
"""From this size on, glibc's malloc maps fresh pages for every array (32 MiB is the largest
block it recycles); the kernel zeroes a fresh page through the cache on first touch, so plain
stores already hit and the staged copy only costs: mnist1's 44 MB forward ran 2.45x PyTorch
streamed against 3.36x in place, and the max-pool backward's 44 MB was slower streamed too.
Such outputs are recycled between calls now (``fastconv/backends/_recycled.py``); in a kept
array mnist1's forward was faster in place too (4.7 against 5.9 ms streamed)."""


def streamed(nbytes, low):
    """True for outputs of ``[low, FRESH)`` bytes: more than stays in cache, in recycled memory."""
    return low <= nbytes < FRESH
