"""Hypothesis strategies for convolution and pooling cases inside the ranges the suite promises:
batch 1–4, channels 1–17, spatial 1–20, kernel 1–5, stride 1–3, dilation 1–2, every padding form.
"""
from dataclasses import dataclass

from hypothesis import assume, strategies as st

from fastconv._shapes import make_geometry


@dataclass
class ConvCase:
    n: int
    h: int
    w: int
    c: int
    o: int
    kh: int
    kw: int
    strides: tuple
    padding: object
    dilation: tuple
    groups: int

    def geometry(self):
        return make_geometry((self.n, self.h, self.w, self.c), (self.kh, self.kw), self.o,
                             self.groups, self.strides, self.padding, self.dilation)


def paddings(max_pad=2):
    small = st.integers(0, max_pad)
    return st.one_of(
        st.sampled_from(["valid", "same"]), small, st.tuples(small, small),
        st.tuples(st.tuples(small, small), st.tuples(small, small)))


def _fits(case):
    try:
        case.geometry()
    except ValueError:
        return False
    return True


@st.composite
def conv_cases(draw, algorithm="auto"):
    """A valid convolution geometry; '1x1', 'depthwise' and 'winograd' draw cases those
    algorithms accept."""
    c = draw(st.integers(1, 17))
    winograd = algorithm == "winograd"
    if algorithm == "depthwise":
        groups, o = c, c * draw(st.integers(1, 3))
    else:
        groups = 1 if winograd else draw(st.sampled_from([d for d in range(1, c + 1)
                                                          if c % d == 0]))
        o = groups * draw(st.integers(1, max(1, 17 // groups)))
    if algorithm == "1x1":
        kh = kw = 1
        padding = draw(st.sampled_from(["valid", 0, ((0, 0), (0, 0))]))
    elif winograd:
        kh = kw = 3
        padding = draw(paddings())
    else:
        kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        padding = draw(paddings())
    case = ConvCase(
        n=draw(st.integers(1, 4)), h=draw(st.integers(1, 20)), w=draw(st.integers(1, 20)),
        c=c, o=o, kh=kh, kw=kw,
        strides=(1, 1) if winograd else draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        padding=padding,
        dilation=(1, 1) if winograd else draw(st.tuples(st.integers(1, 2), st.integers(1, 2))),
        groups=groups)
    assume(_fits(case))
    return case


@st.composite
def pool_cases(draw):
    """A valid pooling geometry: window 1–4, stride 1–3 or None (= window), padding < window."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = draw(st.one_of(
        st.sampled_from(["valid", "same"]),
        st.tuples(st.tuples(st.integers(0, kh - 1), st.integers(0, kh - 1)),
                  st.tuples(st.integers(0, kw - 1), st.integers(0, kw - 1)))))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    case = ConvCase(n=draw(st.integers(1, 4)), h=draw(st.integers(1, 20)),
                    w=draw(st.integers(1, 20)), c=draw(st.integers(1, 17)), o=0, kh=kh, kw=kw,
                    strides=strides or (kh, kw), padding=padding, dilation=(1, 1), groups=1)
    case.o = case.c
    assume(_fits(case))
    g = case.geometry()
    assume(max(g.pt, g.pb) < kh and max(g.pl, g.pr) < kw)  # 'same' with big strides may not
    case.strides = strides
    return case
