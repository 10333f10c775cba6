"""Every lecture layer, PyTorch and fastconv's default call (the 'cython' backend, algorithm
'auto') in alternation: each round runs PyTorch's call, then ours, so both see the machine at
the same moment. ``bench/report.py`` makes the table of the rounds' median ratio."""
import pytest

from shapes import CONV_LAYERS, POOL_LAYERS

pytest.importorskip("torch", reason="the benchmark's peer is PyTorch: pip install .[bench]")
import calls  # noqa: E402

# (the call, fastconv's impl, what its second value counts, layer, direction)
CASES = [(call, impl, amount, layer, d)
         for call, impl, amount, layers in ((calls.conv, "cython-auto", "flops", CONV_LAYERS),
                                            (calls.max_pool, "cython", "bytes_moved", POOL_LAYERS))
         for layer in layers for d in ("forward", "backward")]


@pytest.mark.parametrize("call, impl, amount, layer, direction", CASES,
                         ids=[f"{c[3].name}-{c[4]}" for c in CASES])
def test_paired(record_paired, benchmark, call, impl, amount, layer, direction):
    benchmark.group = f"{layer.name} {direction}"
    peer, count = call(layer, direction, "torch")
    fn, _ = call(layer, direction, impl)
    record_paired(fn, peer, impl=impl, **{amount: count})
