"""The input gradient of a stride-1 convolution, run as a forward convolution.

``gx[h, w, g*Cg + c]`` sums ``gy[h + pt - i*dil_h, w + pl - j*dil_w, g*Og + o] * w[i, j, c,
g*Og + o]`` over the taps and the group's outputs ``o``: the convolution of gy, padded by
``span - pt`` above (``span = (kh - 1)*dil_h``) and ``span - pl`` on the left, with the filter
flipped and each group's two channel axes swapped (:func:`flipped`). The Winograd backward runs
its input gradient so; the CPU kernel sets run their direct forward kernel so for fewer than
``FEW`` outputs per group, where it beat their input-gradient kernels (ResNeXt's 32 groups of 4:
1.2-2x; bench/NOTES.md).
"""
import numpy as np

FEW = 8


def as_forward(w, gx_size, gy_size, sh, sw, pt, pl, dil_h, dil_w, groups):
    """``(wt, pt', pl')`` such that ``forward(gy, wt, gx, 1, 1, pt', pl', dil_h, dil_w, groups)``
    is ``backward_input(gy, w, gx, sh, sw, pt, pl, dil_h, dil_w, groups)``, or None: strides
    other than 1, ``FEW`` outputs per group or more, none at all, or a forward pass that would
    need a negative padding (gy reaching past x's padded cells). ``gx_size``, ``gy_size``:
    (rows, columns) of gx and gy."""
    kh, kw, cg, o = w.shape
    if sh != 1 or sw != 1 or not 0 < o // groups < FEW:
        return None
    pads = []
    for k, d, p, n_in, n_out in zip((kh, kw), (dil_h, dil_w), (pt, pl), gx_size, gy_size):
        span = (k - 1) * d
        end = n_out - n_in - p + span   # the forward pass's implied end padding
        if not (p <= span and end <= span):
            return None
        pads.append(span - p)
    return (np.ascontiguousarray(flipped(w, groups)),) + tuple(pads)


def flipped(w, groups):
    """The filter ``(KH, KW, O // groups, C)`` of the input gradient's forward pass: ``w`` (HWIO)
    flipped in space, each group's input and output channel axes swapped (a view where
    ``groups`` is 1; any array module)."""
    kh, kw, cg, o = w.shape
    per_group = w[::-1, ::-1].reshape(kh, kw, cg, groups, o // groups)
    return per_group.transpose(0, 1, 4, 3, 2).reshape(kh, kw, o // groups, groups * cg)
