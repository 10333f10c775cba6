"""Benchmark settings: one thread count for every library, PyTorch as the peer in the same run."""
import os
import time

import pytest

from fastconv.tune import workspace_bytes

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

