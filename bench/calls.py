"""The calls the layer benchmarks time: one conv or max-pool layer, one direction, PyTorch CPU
(NCHW, its home layout) or a fastconv backend and algorithm (NHWC, ours), on the same data."""
import numpy as np
import torch

import fastconv


def conv(layer, direction, impl):
    """``(fn, flops)``: ``impl`` is 'torch' or 'backend-algorithm'; backward = both gradients
    (and the bias's)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.batch, layer.h, layer.w, layer.c), np.float32)
    w = rng.standard_normal((layer.k, layer.k, layer.c // layer.groups, layer.o), np.float32)
    w *= np.float32(1 / np.sqrt(w[..., 0].size))
    b = np.zeros(layer.o, np.float32)
    flops = layer.flops * (1 if direction == "forward" else 2)
    if impl == "torch":
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
        bt = torch.from_numpy(b)
        pad = 0 if layer.padding == "valid" else layer.k // 2
        # no tensor requires grad: the forward records no graph, as under no_grad
        gy = torch.randn_like(torch.nn.functional.conv2d(xt, wt, bt, padding=pad,
                                                         groups=layer.groups))
        if direction == "forward":
            return (lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=pad,
                                                       groups=layer.groups)), flops
        return (lambda: torch.ops.aten.convolution_backward(
            gy, xt, wt, [layer.o], [1, 1], [pad, pad], [1, 1], False, [0, 0], layer.groups,
            [True, True, True])), flops
    backend, algorithm = impl.split("-")
    kw = dict(padding=layer.padding, groups=layer.groups, algorithm=algorithm, backend=backend)
    if direction == "forward":
        return (lambda: fastconv.conv2d(x, w, b, **kw)), flops
    gy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(np.float32)
    return (lambda: fastconv.conv2d_backward(gy, x, w, **kw)), flops


def max_pool(layer, direction, impl):
    """``(fn, bytes moved)``: ``impl`` is 'torch' or a fastconv backend; the backward scatters
    from the window offsets the forward saved, as PyTorch's does."""
    x = np.random.default_rng(0).standard_normal((layer.batch, layer.h, layer.w, layer.c),
                                                 np.float32)
    out_bytes = x.nbytes // (layer.k * layer.k)
    moved = x.nbytes + out_bytes if direction == "forward" else 2 * x.nbytes + out_bytes
    if impl == "torch":
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        if direction == "forward":
            return (lambda: torch.nn.functional.max_pool2d(xt, layer.k)), moved
        y, idx = torch.nn.functional.max_pool2d(xt, layer.k, return_indices=True)
        gy = torch.randn_like(y)
        return (lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            gy, xt, [layer.k] * 2, [layer.k] * 2, [0, 0], [1, 1], False, idx)), moved
    if direction == "forward":
        return (lambda: fastconv.max_pool2d(x, layer.k, backend=impl)), moved
    y, idx = fastconv.max_pool2d(x, layer.k, backend=impl, return_indices=True)
    gy = np.ones_like(y)
    return (lambda: fastconv.max_pool2d_backward(gy, x, layer.k, backend=impl, indices=idx)), \
        moved
