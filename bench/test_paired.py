"""Every lecture layer, PyTorch and fastconv's default call (the 'cython' backend, algorithm
'auto') in alternation: each round runs PyTorch's call, then ours, so both see the machine at
the same moment. ``bench/report.py`` makes the table of the rounds' median ratio."""
import pytest

from shapes import CONV_LAYERS, POOL_LAYERS

pytest.importorskip("torch", reason="the benchmark's peer is PyTorch: pip install .[bench]")
import calls  # noqa: E402

DIRECTIONS = ("forward", "backward")
CONV = [(layer, d) for layer in CONV_LAYERS for d in DIRECTIONS]
POOL = [(layer, d) for layer in POOL_LAYERS for d in DIRECTIONS]


@pytest.mark.parametrize("layer, direction", CONV, ids=[f"{l.name}-{d}" for l, d in CONV])
def test_conv_paired(record_paired, benchmark, layer, direction):
    benchmark.group = f"{layer.name} {direction}"
    peer, flops = calls.conv(layer, direction, "torch")
    fn, _ = calls.conv(layer, direction, "cython-auto")
    record_paired(fn, peer, flops=flops, impl="cython-auto")


@pytest.mark.parametrize("layer, direction", POOL, ids=[f"{l.name}-{d}" for l, d in POOL])
def test_max_pool_paired(record_paired, benchmark, layer, direction):
    benchmark.group = f"{layer.name} {direction}"
    peer, moved = calls.max_pool(layer, direction, "torch")
    fn, _ = calls.max_pool(layer, direction, "cython")
    record_paired(fn, peer, bytes_moved=moved, impl="cython")
