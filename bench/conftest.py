"""Benchmark settings: one thread count for every library, PyTorch as the peer in the same run."""
import os
import statistics
import time

# PyTorch resolves its libgomp.so.1 to the one fastconv's kernels load: one OpenMP runtime, one
# spin setting for both. The peer keeps libgomp's default (fastconv's cap of 10,000 made
# PyTorch's CIFAR-10 training step ~15 % slower: bench/NOTES.md, step 25).
os.environ.setdefault("GOMP_SPINCOUNT", "300000")

import pytest  # noqa: E402

from fastconv.tune import workspace_bytes  # noqa: E402

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", os.cpu_count()))
SECONDS = 0.4   # of timed calls per case: the median of a few ms-long calls needs dozens
PAIRED_SECONDS = 1.5   # of alternating calls per paired case


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


@pytest.fixture
def record_paired(benchmark):
    """Time ``fn`` under pytest-benchmark with ``peer`` run just before each of its rounds (and
    timed here): one warm-up round, then at least 15 and at most 100 rounds, about
    ``PAIRED_SECONDS`` in all. A round's ratio is the peer's time / ours, both taken within
    milliseconds of each other, so a drift of the machine's speed between cases (1.5-2x within
    minutes here) cancels; stores the median ratio and its quartiles, and both rates."""
    def run(fn, peer, flops=None, bytes_moved=None, **info):
        benchmark.extra_info.update(info, threads=THREADS)
        peer_times = []

        def timed_peer():
            start = time.perf_counter()
            peer()
            peer_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        peer()
        fn()
        rounds = min(100, max(15, int(PAIRED_SECONDS / max(time.perf_counter() - start, 1e-6))))
        benchmark.pedantic(fn, setup=timed_peer, warmup_rounds=1, rounds=rounds, iterations=1)
        ours = benchmark.stats.stats.data
        ratios = [p / o for p, o in zip(peer_times[1:], ours)]
        q1, median, q3 = statistics.quantiles(ratios, n=4)
        benchmark.extra_info.update(ratio=median, ratio_q1=q1, ratio_q3=q3,
                                    peer_median=statistics.median(peer_times[1:]))
        amount, unit = (flops, "gflops") if flops else (bytes_moved, "gbytes_per_s")
        benchmark.extra_info[unit] = amount / statistics.median(ours) / 1e9
        benchmark.extra_info["peer_" + unit] = amount / statistics.median(peer_times[1:]) / 1e9
    return run
