"""Index tables shared by the CPU depthwise kernels: the filter taps that land on real cells.

Plain NumPy (no Numba, no Cython), computed once per call and per axis; the kernels loop over
``cnt[o]`` entries of ``tab[o]`` only, and every such cell lies inside the array it indexes.
"""
import numpy as np


def taps(n, k, s, p, d, n_cells, adjoint):
    """The filter taps reaching a real cell, per index ``o < n`` along one axis.

    Returns ``(tab, cnt)``: ``tab[o, t] = (cell, tap)`` for ``t < cnt[o]``, in increasing
    ``tap``; the cells and taps of one ``o`` are evenly spaced (the kernels rely on it). Forward
    (``adjoint`` False): ``o`` is an output index, ``cell = o*s - p + tap*d`` the input index it
    reads. Adjoint: ``o`` is an input index, ``cell = (o + p - tap*d) / s`` (where exact) the
    output index that read it. Every listed ``cell`` lies in ``[0, n_cells)``.
    """
    o, t = np.arange(n)[:, None], np.arange(k)[None, :]
    if adjoint:
        a = o + p - t * d
        cell, real = a // s, (a >= 0) & (a % s == 0)
    else:
        cell, real = o * s - p + t * d, np.ones((n, k), bool)
    real &= (cell >= 0) & (cell < n_cells)
    order = np.argsort(~real, axis=1, kind="stable")  # the real taps first, in tap order
    tab = np.zeros((n, k, 2), np.intp)
    tab[..., 0] = np.take_along_axis(np.where(real, cell, 0), order, axis=1)
    tab[..., 1] = np.take_along_axis(np.broadcast_to(t, (n, k)), order, axis=1)
    return tab, real.sum(axis=1).astype(np.intp)
