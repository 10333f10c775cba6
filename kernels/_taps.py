"""Index tables shared by the CPU depthwise kernels: the filter taps that land on real cells.

Plain NumPy (no Numba, no Cython), cached per geometry (the arrays are read-only); the kernels
loop over ``cnt[o]`` entries of ``tab[o]`` only, and every such cell lies inside the array it
indexes.
"""
import functools

import numpy as np

RUN_FIELDS = 9  # q0, q_step, nq, cell0, cell_step, tap0, tap_step, tap_cell_step, ntaps


@functools.lru_cache(maxsize=256)
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
    cnt = real.sum(axis=1).astype(np.intp)
    tab.flags.writeable = cnt.flags.writeable = False
    return tab, cnt


@functools.lru_cache(maxsize=256)
def runs(n, k, s, p, d, n_cells, adjoint):
    """The indices ``o < n`` of :func:`taps` grouped in runs that share their taps.

    Returns ``runs[R, RUN_FIELDS]``; run ``u`` = ``(q0, q_step, nq, cell0, cell_step, tap0,
    tap_step, tap_cell_step, ntaps)`` covers ``o = q0 + i*q_step`` for ``i < nq``, whose taps are
    ``tap0 + t*tap_step`` on the cells ``cell0 + i*cell_step + t*tap_cell_step``, ``t < ntaps``:
    exactly the entries of ``taps(...)``, in increasing cell (the adjoint's taps backwards), so
    that where ``cell_step == tap_cell_step`` neighbouring indices share cells. Every ``o`` is in
    one run. The adjoint groups the indices by their phase modulo ``s`` (``q_step = s``), the
    forward pass has ``q_step = 1``.
    """
    tab, cnt = taps(n, k, s, p, d, n_cells, adjoint)
    step = s if adjoint else 1
    o = np.concatenate([np.arange(f, n, step) for f in range(min(step, n))] or [[]])
    o = o.astype(np.intp)
    t, c = tab[o], cnt[o]
    if adjoint:  # the real taps of each index reversed: their cells increase
        j = np.arange(k)
        t = np.take_along_axis(t, np.where(j < c[:, None], c[:, None] - 1 - j, j)[..., None], 1)
    two, t1 = c > 1, t[:, min(1, k - 1)]
    sig = np.stack([t[:, 0, 1], np.where(two, t1[:, 1] - t[:, 0, 1], 0),
                    np.where(two, t1[:, 0] - t[:, 0, 0], 0), c], axis=1)
    new = np.ones(len(o), bool)
    new[1:] = (o[1:] != o[:-1] + step) | (sig[1:] != sig[:-1]).any(axis=1)
    start = np.flatnonzero(new)
    nq = np.diff(np.append(start, len(o)))
    cell = np.where(c > 0, t[:, 0, 0], 0)
    cell_step = np.where(nq > 1, cell[np.minimum(start + 1, len(o) - 1)] - cell[start], 0)
    run = np.repeat(np.arange(len(start)), nq)
    i = np.arange(len(o)) - start[run]
    if not np.array_equal(cell, cell[start][run] + i * cell_step[run]):
        raise AssertionError("depthwise tap runs: cells not evenly spaced")  # never: cells are affine
    out = np.stack([o[start], np.full(len(start), step), nq, cell[start], cell_step,
                    sig[start, 0], sig[start, 1], sig[start, 2], sig[start, 3]], axis=1)
    out = np.ascontiguousarray(out, np.intp)
    out.flags.writeable = False
    return out
