"""Turn a pytest-benchmark JSON into a markdown table of speed ratios against PyTorch.

    python bench/report.py bench/results/cpu-2core.json > bench/results/cpu-2core.md

Ratio = PyTorch's median time / ours (> 1: fastconv is faster). Ratios, not absolute times,
are what carry across these shared, noisy machines. A run of ``bench/test_paired.py`` (both
libraries in alternation) gives the median and quartiles of the rounds' ratios instead.
"""
import json
import sys
from collections import defaultdict


def main(path):
    data = json.load(open(path))
    if "ratio" in data["benchmarks"][0]["extra_info"]:
        return paired(data)
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        groups[b["group"]][b["extra_info"]["impl"]] = b
    impls = sorted({i for g in groups.values() for i in g if i != "torch"})
    print(f"# Speed vs PyTorch {data['machine_info'].get('cpu', {}).get('brand_raw', '')}\n")
    print(f"threads: {data['benchmarks'][0]['extra_info'].get('threads')}; ratio = PyTorch "
          "median time / fastconv median time (> 1 is faster); best = best fastconv algorithm; "
          "rate = GFLOP/s (pooling: GB/s), effective: direct-convolution FLOPs / time; workspace = "
          "peak extra memory of the best algorithm's call beyond its outputs.\n")
    images = any("images_per_s" in b["extra_info"] for b in data["benchmarks"])
    extra = ["PyTorch img/s", "best img/s"] if images else []
    print("| case | PyTorch rate | best | best ratio | best rate | workspace MiB | "
          + " | ".join(impls + extra) + " |")
    print("|---" * (6 + len(impls) + len(extra)) + "|")
    for name, g in groups.items():
        if "torch" not in g:
            continue
        ref = g["torch"]["stats"]["median"]
        ratios = {i: ref / g[i]["stats"]["median"] for i in impls if i in g}
        best = max(ratios, key=ratios.get)
        info = g["torch"]["extra_info"]
        rate = info.get("gflops", info.get("gbytes_per_s", 0))
        mine = g[best]["extra_info"]
        best_rate = mine.get("gflops", mine.get("gbytes_per_s", 0))
        space = mine.get("workspace_bytes")
        space = "" if space is None else f"{space / 2**20:.2f}"
        cells = [f"{ratios[i]:.2f}" if i in ratios else "" for i in impls]
        if images:
            cells += [f"{g[k]['extra_info']['images_per_s']:.1f}" for k in ("torch", best)]
        print(f"| {name} | {rate:.1f} | {best} | **{ratios[best]:.2f}** | {best_rate:.1f} | "
              f"{space} | " + " | ".join(cells)
              + " |")


def paired(data):
    print(f"# Speed vs PyTorch, paired {data['machine_info'].get('cpu', {}).get('brand_raw', '')}"
          "\n")
    print(f"threads: {data['benchmarks'][0]['extra_info'].get('threads')}; each round times "
          "PyTorch's call, then fastconv's default one (backend 'cython', algorithm 'auto'); "
          "ratio = PyTorch's time / ours in the same round (> 1 is faster): the median over the "
          "rounds, and its quartiles; rate = GFLOP/s (pooling: GB/s) from the median times.\n")
    print("| case | rounds | ratio | quartiles | PyTorch rate | fastconv rate |")
    print("|---|---|---|---|---|---|")
    for b in data["benchmarks"]:
        i = b["extra_info"]
        unit = "gflops" if "gflops" in i else "gbytes_per_s"
        print(f"| {b['group']} | {b['stats']['rounds']} | **{i['ratio']:.2f}** | "
              f"{i['ratio_q1']:.2f}-{i['ratio_q3']:.2f} | {i['peer_' + unit]:.1f} | "
              f"{i[unit]:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
