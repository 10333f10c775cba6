"""Every conv layer shape x direction x implementation, PyTorch CPU (NCHW, its home layout)
beside each fastconv backend and algorithm (NHWC, ours), in the same run."""
import numpy as np
import pytest

import fastconv
from fastconv import backends
from fastconv._shapes import make_geometry
from fastconv.functional import applicable_algorithms
from shapes import CONV_LAYERS, POOL_LAYERS

torch = pytest.importorskip("torch", reason="the benchmark's peer is PyTorch: pip install .[bench]")

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


def _arrays(layer, rng):
    x = rng.standard_normal((layer.batch, layer.h, layer.w, layer.c), np.float32)
    w = rng.standard_normal((layer.k, layer.k, layer.c // layer.groups, layer.o), np.float32)
    w *= np.float32(1 / np.sqrt(w[..., 0].size))
    return x, w


@pytest.mark.parametrize("layer, direction, impl", CASES,
                         ids=[f"{l.name}-{d}-{i}" for l, d, i in CASES])
def test_conv(record, benchmark, layer, direction, impl):
    benchmark.group = f"{layer.name} {direction}"
    rng = np.random.default_rng(0)
    x, w = _arrays(layer, rng)
    b = np.zeros(layer.o, np.float32)
    if impl == "torch":
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
        bt = torch.from_numpy(b)
        pad = 0 if layer.padding == "valid" else layer.k // 2
        with torch.no_grad():
            yt = torch.nn.functional.conv2d(xt, wt, bt, padding=pad, groups=layer.groups)
            gy = torch.randn_like(yt)
            if direction == "forward":
                fn = lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=pad,  # noqa: E731
                                                        groups=layer.groups)
            else:
                fn = lambda: torch.ops.aten.convolution_backward(  # noqa: E731
                    gy, xt, wt, [layer.o], [1, 1], [pad, pad], [1, 1], False, [0, 0],
                    layer.groups, [True, True, True])
            record(fn, flops=layer.flops * (1 if direction == "forward" else 2), impl=impl)
        return
    backend, algorithm = impl.split("-")
    kw = dict(padding=layer.padding, groups=layer.groups, algorithm=algorithm, backend=backend)
    if direction == "forward":
        fn = lambda: fastconv.conv2d(x, w, b, **kw)  # noqa: E731
    else:
        gy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(np.float32)
        fn = lambda: fastconv.conv2d_backward(gy, x, w, **kw)  # noqa: E731
    record(fn, flops=layer.flops * (1 if direction == "forward" else 2), impl=impl)


POOL_CASES = [(layer, d, impl) for layer in POOL_LAYERS for d in ("forward", "backward")
              for impl in ["torch"] + CPU_BACKENDS]


@pytest.mark.parametrize("layer, direction, impl", POOL_CASES,
                         ids=[f"{l.name}-{d}-{i}" for l, d, i in POOL_CASES])
def test_max_pool(record, benchmark, layer, direction, impl):
    benchmark.group = f"{layer.name} {direction}"
    x = np.random.default_rng(0).standard_normal((layer.batch, layer.h, layer.w, layer.c),
                                                 np.float32)
    out_bytes = x.nbytes // (layer.k * layer.k)
    moved = x.nbytes + out_bytes if direction == "forward" else 2 * x.nbytes + out_bytes
    if impl == "torch":
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(direction != "forward")
        if direction == "forward":
            with torch.no_grad():
                record(lambda: torch.nn.functional.max_pool2d(xt, layer.k), bytes_moved=moved,
                       impl=impl)
        else:
            y, idx = torch.nn.functional.max_pool2d(xt.detach(), layer.k, return_indices=True)
            gy = torch.randn_like(y)
            record(lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gy, xt.detach(), [layer.k] * 2, [layer.k] * 2, [0, 0], [1, 1], False, idx),
                bytes_moved=moved, impl=impl)
        return
    if direction == "forward":
        record(lambda: fastconv.max_pool2d(x, layer.k, backend=impl), bytes_moved=moved, impl=impl)
    else:   # from the window offsets the forward saved, as PyTorch's backward does
        y, idx = fastconv.max_pool2d(x, layer.k, backend=impl, return_indices=True)
        gy = np.ones_like(y)
        record(lambda: fastconv.max_pool2d_backward(gy, x, layer.k, backend=impl, indices=idx),
               bytes_moved=moved, impl=impl)
