"""Benchmark settings: one thread count for every library, PyTorch as the peer in the same run."""
import os
import time

# PyTorch resolves its libgomp.so.1 to the one fastconv's kernels load: one OpenMP runtime, one
# spin setting for both. The peer keeps libgomp's default (fastconv's cap of 10,000 made
# PyTorch's CIFAR-10 training step ~15 % slower: bench/NOTES.md, step 25).
os.environ.setdefault("GOMP_SPINCOUNT", "300000")

import pytest  # noqa: E402

from fastconv.tune import workspace_bytes  # noqa: E402

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", os.cpu_count()))
SECONDS = 0.4   # of timed calls per case: the median of a few ms-long calls needs dozens


def pytest_configure(config):
    import fastconv
    fastconv.set_num_threads(THREADS)
    try:
        import torch
        torch.set_num_threads(THREADS)
    except ImportError:
        pass


@pytest.fixture
def record(benchmark):
    """Run ``fn`` under pytest-benchmark (``rounds`` timed calls after one warm-up; by default
    at least 7, more for fast calls, about ``SECONDS`` in all, at most 60) and store GFLOP/s
    (or GB/s) from the median time, and for fastconv the workspace: the peak of NumPy's
    allocations during one call (NumPy reports them to tracemalloc, from every thread) less
    the arrays the call returns."""
    def run(fn, flops=None, bytes_moved=None, rounds=None, **info):
        benchmark.extra_info.update(info, threads=THREADS)
        if info.get("impl") != "torch":
            benchmark.extra_info["workspace_bytes"] = workspace_bytes(fn)
        if rounds is None:
            start = time.perf_counter()
            fn()
            rounds = min(60, max(7, int(SECONDS / max(time.perf_counter() - start, 1e-6))))
        benchmark.pedantic(fn, warmup_rounds=1, rounds=rounds, iterations=1)
        median = benchmark.stats.stats.median
        if flops:
            benchmark.extra_info["gflops"] = flops / median / 1e9
        if bytes_moved:
            benchmark.extra_info["gbytes_per_s"] = bytes_moved / median / 1e9
    return run

