"""Output sizes, padding and layouts: the one place where these rules live.

The lecture's formula for one spatial axis is ``floor((n + 2p - f) / s) + 1``; with dilation
``d`` the filter spans ``d*(f-1) + 1`` cells, and with asymmetric padding ``2p`` becomes
``p_before + p_after``. 'same' padding follows Keras/TensorFlow: the output is ``ceil(n / s)``
and an odd total padding puts the extra cell at the bottom/right.
"""
from dataclasses import dataclass
from functools import cached_property
import math
import numbers

DATA_FORMATS = ("channels_last", "channels_first")


def is_int(value):
    """An integer of any kind (Python's or NumPy's), not a bool; plain ints checked first (the
    ABC check costs a microsecond, and a call makes dozens)."""
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, bool))


def _positive_pair(value, name):
    if is_int(value):
        value = (value, value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    for v in (a, b):
        if not is_int(v) or v < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}")
    return int(a), int(b)


def conv_output_size(n, f, s=1, p=0, d=1):
    """The lecture's ``floor((n + 2p - f)/s) + 1`` with dilation ``d``.

    ``p`` is an int (both sides) or a pair ``(before, after)``.
    """
    before, after = (p, p) if is_int(p) else p
    return (n + before + after - (d * (f - 1) + 1)) // s + 1


def resolve_padding(padding, size, kernel, strides, dilation):
    """Return ``((top, bottom), (left, right))`` for any padding form.

    ``padding``: 'valid', 'same', an int, a pair ``(ph, pw)`` or ``((top, bottom), (left, right))``.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode != "same":
            raise ValueError(f"padding must be 'valid', 'same' or integers, got {padding!r}")
        pads = []
        for n, f, s, d in zip(size, kernel, strides, dilation):
            total = max((math.ceil(n / s) - 1) * s + d * (f - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if is_int(padding):
        padding = ((padding, padding), (padding, padding))
    try:
        ph, pw = padding
        pads = tuple((p, p) if is_int(p) else tuple(p) for p in (ph, pw))
        ok = all(len(p) == 2 and all(is_int(v) and v >= 0 for v in p) for p in pads)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError("padding must be 'valid', 'same', a non-negative int, a pair, or "
                         f"((top, bottom), (left, right)); got {padding!r}")
    return tuple((int(a), int(b)) for a, b in pads)


@dataclass(frozen=True)
class Geometry:
    """Everything a kernel needs to know about one convolution or pooling window, NHWC.

    ``kh, kw`` are the filter (or pool) size, ``o`` the output channels, ``groups`` the
    convolution groups (pooling: one per channel).
    """
    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    o: int
    groups: int
    sh: int
    sw: int
    dil_h: int
    dil_w: int
    pt: int
    pb: int
    pl: int
    pr: int

    @cached_property
    def oh(self):
        return conv_output_size(self.h, self.kh, self.sh, (self.pt, self.pb), self.dil_h)

    @cached_property
    def ow(self):
        return conv_output_size(self.w, self.kw, self.sw, (self.pl, self.pr), self.dil_w)

    @property
    def input_shape(self):
        return (self.n, self.h, self.w, self.c)

    @property
    def output_shape(self):
        return (self.n, self.oh, self.ow, self.o)

    @property
    def flops(self):
        """Multiply-adds x 2 of the direct convolution."""
        return 2 * self.n * self.oh * self.ow * self.o * self.kh * self.kw * (self.c // self.groups)

    @property
    def padded(self):
        return any((self.pt, self.pb, self.pl, self.pr))

    def stride_args(self):
        """The integers kernels take after their arrays: ``sh, sw, pt, pl, dil_h, dil_w``."""
        return self.sh, self.sw, self.pt, self.pl, self.dil_h, self.dil_w


def make_geometry(input_shape, kernel_size, out_channels, groups, strides, padding, dilation,
                  what="kernel"):
    """Validate one window geometry (NHWC ``input_shape``) and return its :class:`Geometry`."""
    n, h, w, c = input_shape
    kh, kw = _positive_pair(kernel_size, what + " size")
    sh, sw = _positive_pair(strides, "strides")
    dil_h, dil_w = _positive_pair(dilation, "dilation")
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), (kh, kw), (sh, sw), (dil_h, dil_w))
    g = Geometry(n, h, w, c, kh, kw, out_channels, groups, sh, sw, dil_h, dil_w, pt, pb, pl, pr)
    if g.oh < 1 or g.ow < 1:
        raise ValueError(
            f"the {what} spans {(dil_h * (kh - 1) + 1, dil_w * (kw - 1) + 1)} cells, larger than "
            f"the padded input {(h + pt + pb, w + pl + pr)} (input {h}x{w}, padding "
            f"{((pt, pb), (pl, pr))})")
    return g


def conv_output_shape(input_shape, kernel_size, filters=None, strides=1, padding="valid",
                      dilation=1, data_format="channels_last"):
    """Output shape of a convolution (or pooling, with ``filters=None``), by the lecture's formula.

    ``input_shape`` is ``(N, H, W, C)`` or ``(H, W, C)`` (channels_first: ``(N, C, H, W)`` or
    ``(C, H, W)``); the result has the same rank and layout.
    >>> conv_output_shape((7, 7, 1), 3, 1, strides=2, padding=1)
    (4, 4, 1)
    """
    check_data_format(data_format)
    shape = tuple(input_shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"input_shape must have 3 or 4 dimensions, got {shape}")
    batched = shape if len(shape) == 4 else (1,) + shape
    nhwc = to_nhwc_shape(batched, data_format)
    g = make_geometry(nhwc, kernel_size, nhwc[3] if filters is None else filters, 1, strides,
                      padding, dilation)
    out = from_nhwc_shape(g.output_shape, data_format)
    return out if len(shape) == 4 else out[1:]


def check_data_format(data_format):
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")


def to_nhwc_shape(shape, data_format):
    n, a, b, c = shape
    return (n, b, c, a) if data_format == "channels_first" else (n, a, b, c)


def from_nhwc_shape(shape, data_format):
    n, h, w, c = shape
    return (n, c, h, w) if data_format == "channels_first" else (n, h, w, c)
