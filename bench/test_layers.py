"""Every conv layer shape x direction x implementation, PyTorch CPU (NCHW, its home layout)
beside each fastconv backend and algorithm (NHWC, ours), in the same run."""
import pytest

from fastconv import backends
from fastconv._shapes import make_geometry
from fastconv.functional import applicable_algorithms
from shapes import CONV_LAYERS, POOL_LAYERS

pytest.importorskip("torch", reason="the benchmark's peer is PyTorch: pip install .[bench]")
import calls  # noqa: E402

CPU_BACKENDS = [name for name in ("cython", "numba") if name in backends.available()]


def _algorithms(layer):
    """Every algorithm that applies, except those at 0.03-0.76x PyTorch in every earlier run and
    slow enough to double the run: 'direct' on dense layers (more than 4 channels per group),
    anything but 'depthwise' on depthwise layers."""
    g = make_geometry((layer.batch, layer.h, layer.w, layer.c), (layer.k, layer.k), layer.o,
                      layer.groups, 1, layer.padding, 1, "kernel")
    if layer.groups == layer.c > 1:
        return ["depthwise"]
    dense = layer.c // layer.groups > 4
    return [a for a in applicable_algorithms(g) if not (a == "direct" and dense)]


def _impls(layer):
    return ["torch"] + [f"{b}-{a}" for b in CPU_BACKENDS for a in _algorithms(layer)]


CASES = [(layer, d, impl) for layer in CONV_LAYERS for d in ("forward", "backward")
         for impl in _impls(layer)]


@pytest.mark.parametrize("layer, direction, impl", CASES,
                         ids=[f"{l.name}-{d}-{i}" for l, d, i in CASES])
def test_conv(record, benchmark, layer, direction, impl):
    benchmark.group = f"{layer.name} {direction}"
    fn, flops = calls.conv(layer, direction, impl)
    record(fn, flops=flops, impl=impl)


POOL_CASES = [(layer, d, impl) for layer in POOL_LAYERS for d in ("forward", "backward")
              for impl in ["torch"] + CPU_BACKENDS]


@pytest.mark.parametrize("layer, direction, impl", POOL_CASES,
                         ids=[f"{l.name}-{d}-{i}" for l, d, i in POOL_CASES])
def test_max_pool(record, benchmark, layer, direction, impl):
    benchmark.group = f"{layer.name} {direction}"
    fn, moved = calls.max_pool(layer, direction, impl)
    record(fn, bytes_moved=moved, impl=impl)
