"""fastconv's CUDA backend ('cupy') against PyTorch cuDNN on one GPU, in one run of ~150 s.

    python bench/gpu.py --out bench/results                         # on the GPU machine
    python bench/gpu.py --device cpu --quick --out /tmp/gpubench    # smoke test, no GPU
    python bench/gpu.py --report bench/results/gpu-nvidia-h200.json # the markdown again

Ceilings first (device copy bandwidth; fp32 SGEMM 8192^3 with CuPy and PyTorch), then pooling
and every conv layer of shapes.py, forward and backward (dx + dw + db on both sides), for each
fastconv algorithm that applies and for PyTorch on the same NHWC bytes as a channels_last
tensor and on plain NCHW (the peer is the faster). Honest fp32: cuDNN benchmark mode, TF32 off.
Times: CUDA events around each call (perf_counter on --device cpu), median of up to --repeat
calls after warm-up. Each case runs in its own try/except and is checked once against
PyTorch's NCHW result (rel_err = max|ours - torch| / max|torch|, flagged above 1e-3); cases
past --budget-s are recorded as skipped. Writes DIR/gpu-<device>.json and .md and prints the
markdown: ratio = peer median time / fastconv median time (> 1: fastconv faster).
--device cpu runs the same logic with NumPy arrays (backend 'cython') against PyTorch CPU.
"""
import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
import fastconv  # noqa: E402
from shapes import CONV_LAYERS, POOL_LAYERS, Layer  # noqa: E402

T0 = time.perf_counter()   # the budget counts from here (torch and cupy are imported later)
FLAG = 1e-3
POOLS = [(l.name, l, "max") for l in POOL_LAYERS] + [  # (name, shape, mode): cifar's 2x2 pools
    (f"cifar {m}pool 2x2 {h}x{h}x{c}", Layer("", 128, h, h, c, c, k=2, padding="valid"), m)
    for h, c in ((28, 64), (12, 128)) for m in ("max", "avg")]
TORCH = ("torch-channels_last", "torch-nchw")
NOTES = dict(
    timing="CUDA events of the case's library around each call, waited for after each (cpu: "
           "perf_counter); median of `runs` calls after `warmup` calls, the first one checked "
           "against PyTorch's NCHW result",
    torch_conv="F.conv2d forward; torch.ops.aten.convolution_backward (dx, dw, db) backward; "
               "channels_last: input, weight and output gradient all channels_last",
    torch_pool="F.max_pool2d/avg_pool2d; aten.max_pool2d_with_indices_backward (indices from "
               "the forward) and aten.avg_pool2d_backward",
    rate="conv: GFLOP/s of shapes.py's direct-convolution FLOPs (backward x2); pool: GB/s of "
         "x + y (backward x + gy + gx); copy: GB/s of bytes read + written")


class Env:
    """The device: array library, conversions to and from torch, timers."""

    def __init__(self, args):
        import torch
        self.torch, self.args, self.cuda = torch, args, args.device == "cuda"
        with warnings.catch_warnings():  # torch >= 2.9 calls these flags legacy; they still work
            warnings.simplefilter("ignore")
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        if self.cuda:
            import cupy
            self.xp, self.dev, self.name = cupy, torch.device("cuda"), torch.cuda.get_device_name()
        else:
            self.xp, self.dev = np, torch.device("cpu")
            fastconv.set_num_threads(os.cpu_count())
            torch.set_num_threads(os.cpu_count())
            info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
            model = re.findall(r"model name\s*:\s*(.*)", info) or [platform.processor()]
            self.name = f"cpu {model[0]} x{os.cpu_count()}"
        self.backend = args.backend or ("cupy" if self.cuda else "cython")
        self.slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    def to_xp(self, t):
        return self.xp.from_dlpack(t) if self.cuda else t.numpy()

    def to_torch(self, a):
        return self.torch.from_dlpack(a) if self.cuda else self.torch.from_numpy(np.asarray(a))

    def randn(self, *shape, scale=1.0):
        return self.torch.randn(*shape, device=self.dev) * scale

    def timer(self, lib):
        """``time(fn) -> ms``: ``lib``'s CUDA events around one call, waited for; or the clock."""
        if not self.cuda:
            def clock(fn):
                t = time.perf_counter()
                fn()
                return (time.perf_counter() - t) * 1e3
            return clock
        tc, cp = self.torch.cuda, self.xp.cuda
        ev = [tc.Event(enable_timing=True) if lib == "torch" else cp.Event() for _ in range(2)]

        def events(fn):
            ev[0].record()
            fn()
            ev[1].record()
            ev[1].synchronize()
            return ev[0].elapsed_time(ev[1]) if lib == "torch" else cp.get_elapsed_time(*ev)
        return events

    def versions(self):
        torch, v = self.torch, dict(python=platform.python_version(), numpy=np.__version__,
                                    torch=self.torch.__version__, fastconv=fastconv.__version__)
        try:
            v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                      capture_output=True, check=False).stdout.strip() or None
        except OSError:
            pass
        if self.cuda:
            rt = self.xp.cuda.runtime
            v.update(cupy=self.xp.__version__, torch_cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(), cuda_runtime=rt.runtimeGetVersion(),
                     cuda_driver=rt.driverGetVersion(), CUPY_TF32=os.environ.get("CUPY_TF32"))
        v["tf32"] = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                     "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32}
        return v


class Runner:
    """Runs the cases within the budget; every case becomes one record, failures included."""

    def __init__(self, env, total, save):
        self.env, self.args, self.left, self.save, self.cases = env, env.args, total, save, []

    def measure(self, fn, lib, cap_s):
        timer, cap_ms = self.env.timer(lib), cap_s * 1e3
        if self.env.cuda:
            self.env.torch.cuda.synchronize()
        for _ in range(max(1, self.args.warmup - 1)):  # the checked first call was warm-up 1
            t = timer(fn)
            if t > cap_ms:                              # one slow call: enough warm-up
                break
        times = [timer(fn) for _ in range(max(1, min(self.args.repeat, int(cap_ms / (t + 1e-3)))))]
        return statistics.median(times), len(times)

    def case(self, rec, fn, lib, work, ref=None, as_ours=None):
        """Run ``fn`` once (checked against ``ref``), then time it; ``work``: FLOPs or bytes."""
        self.left -= 1
        rec.update(lib=lib, median_ms=None, runs=0, rate=None, rel_err=None, flag=False,
                   error=None, skipped=False)
        self.cases.append(rec)
        remaining = self.args.budget_s - (time.perf_counter() - T0)
        if remaining <= 0:
            rec["skipped"] = True
            return
        try:
            out = fn()
            if ref is not None:
                rec["rel_err"] = rel_err(as_ours(out), ref)
                rec["flag"] = not rec["rel_err"] <= FLAG
            del out
            ms, rec["runs"] = self.measure(fn, lib, min(self.args.case_s,
                                                         0.5 * remaining / (self.left + 1)))
            rec.update(median_ms=ms, rate=work / ms / 1e6)   # GFLOP/s or GB/s
        except Exception as exc:  # noqa: BLE001 -- record it, go on
            rec["error"] = f"{type(exc).__name__}: {exc}"[:500]

    def group(self, base, impls, setup):
        """``setup()`` yields the cases of one layer; if it fails, the rest record why."""
        try:
            if time.perf_counter() - T0 > self.args.budget_s:
                raise TimeoutError("budget spent")
            for rec, *case in setup():
                self.case(rec, *case)
        except Exception as exc:  # noqa: BLE001
            done = {(c["group"], c["direction"], c["impl"]) for c in self.cases}
            for impl in (i for i in impls if (base["group"], base["direction"], i) not in done):
                self.left -= 1
                skip = isinstance(exc, TimeoutError)
                self.cases.append(dict(base, impl=impl, median_ms=None, rate=None, flag=False,
                                       skipped=skip, error=None if skip else f"setup: {exc!r}"))
        self.save()


def rel_err(outs, refs):
    err = 0.0
    for a, r in zip(outs, refs, strict=True):
        if tuple(a.shape) != tuple(r.shape):
            raise ValueError(f"shape {tuple(a.shape)}, PyTorch's {tuple(r.shape)}")
        a, r = a.double(), r.double()
        err = max(err, ((a - r).abs().max() / r.abs().max().clamp_min(1e-30)).item())
    return err


def algorithms(layer):
    return ["direct", "im2col"] + ["1x1"] * (layer.k == 1) + \
        ["depthwise"] * (layer.groups == layer.c > 1)


def _nchw(t, fmt):
    return t.permute(0, 3, 1, 2).contiguous(memory_format=fmt)


def _layouts(torch):
    return (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last))


def conv_cases(env, layer, direction):
    """Yield ``(record, fn, lib, flops, reference, as_ours)`` for each impl of one layer."""
    torch, n, k, g, o = env.torch, layer.batch, layer.k, layer.groups, layer.o
    pad = k // 2 if layer.padding == "same" else 0
    oh, ow = layer.h + 2 * pad - k + 1, layer.w + 2 * pad - k + 1
    x, gy, b = env.randn(n, layer.h, layer.w, layer.c), env.randn(n, oh, ow, o), env.randn(o)
    w = env.randn(k, k, layer.c // g, o, scale=(k * k * layer.c // g) ** -0.5)  # HWIO
    flops, fwd = layer.flops * (1 if direction == "forward" else 2), direction == "forward"
    fns = {}
    for layout, fmt in _layouts(torch):
        xt, gyt, wt = _nchw(x, fmt), _nchw(gy, fmt), w.permute(3, 2, 0, 1).contiguous(
            memory_format=fmt)
        fns[layout] = (lambda xt=xt, wt=wt: torch.nn.functional.conv2d(
            xt, wt, b, padding=pad, groups=g)) if fwd else (
            lambda xt=xt, wt=wt, gyt=gyt: torch.ops.aten.convolution_backward(
                gyt, xt, wt, [o], [1, 1], [pad, pad], [1, 1], False, [0, 0], g, [True] * 3))

    def torch_ours(r):   # PyTorch's results in our layouts: NHWC, HWIO
        return [r.permute(0, 2, 3, 1)] if fwd else [r[0].permute(0, 2, 3, 1),
                                                    r[1].permute(2, 3, 1, 0), r[2]]
    ref = torch_ours(fns["nchw"]())
    rec = dict(group=layer.name, kind="conv", direction=direction)
    for layout in ("channels_last", "nchw"):
        yield dict(rec, impl=f"torch-{layout}"), fns[layout], "torch", flops, ref, torch_ours
    xa, wa, ba, gya = (env.to_xp(t) for t in (x, w, b, gy))
    for algo in algorithms(layer):
        kw = dict(padding=layer.padding, groups=g, algorithm=algo, backend=env.backend)
        fn = (lambda kw=kw: fastconv.conv2d(xa, wa, ba, **kw)) if fwd else (
            lambda kw=kw: fastconv.conv2d_backward(gya, xa, wa, **kw))
        yield (dict(rec, impl=f"{env.backend}-{algo}"), fn, "fastconv", flops, ref,
               lambda r: [env.to_torch(a) for a in ([r] if fwd else r)])


def pool_cases(env, name, layer, mode, direction):
    torch, n, k, c, aten = env.torch, layer.batch, layer.k, layer.c, env.torch.ops.aten
    x, gy = env.randn(n, layer.h, layer.w, c), env.randn(n, layer.h // k, layer.w // k, c)
    moved = 4 * (x.numel() + gy.numel() + (x.numel() if direction == "backward" else 0))
    fns = {}
    for layout, fmt in _layouts(torch):
        xt, gyt = _nchw(x, fmt), _nchw(gy, fmt)
        if direction == "forward":
            fns[layout] = lambda xt=xt: getattr(torch.nn.functional, f"{mode}_pool2d")(xt, k)
        elif mode == "max":   # the indices come from PyTorch's forward, as in training
            idx = torch.nn.functional.max_pool2d(xt, k, return_indices=True)[1]
            fns[layout] = lambda xt=xt, gyt=gyt, idx=idx: aten.max_pool2d_with_indices_backward(
                gyt, xt, [k, k], [k, k], [0, 0], [1, 1], False, idx)
        else:
            fns[layout] = lambda xt=xt, gyt=gyt: aten.avg_pool2d_backward(
                gyt, xt, [k, k], [k, k], [0, 0], False, True, None)
    ref = [fns["nchw"]().permute(0, 2, 3, 1)]
    rec = dict(group=name, kind="pool", direction=direction)
    for layout in ("channels_last", "nchw"):
        yield (dict(rec, impl=f"torch-{layout}"), fns[layout], "torch", moved, ref,
               lambda y: [y.permute(0, 2, 3, 1)])
    xa, gya = env.to_xp(x), env.to_xp(gy)
    fn = (lambda: getattr(fastconv, f"{mode}_pool2d")(xa, k, backend=env.backend)) \
        if direction == "forward" else \
        (lambda: getattr(fastconv, f"{mode}_pool2d_backward")(gya, xa, k, backend=env.backend))
    yield dict(rec, impl=env.backend), fn, "fastconv", moved, ref, lambda y: [env.to_torch(y)]


def ceiling_cases(env):
    """Device copy (rate counts bytes read + written) and fp32 SGEMM."""
    xp, quick = env.xp, env.args.quick
    nbytes, n = (1 << 30, 8192) if env.cuda else (32 << 20, 512) if quick else (256 << 20, 1024)
    a = xp.ones(nbytes // 4, np.float32)
    b = xp.empty_like(a)
    rec = dict(kind="ceiling", direction="")
    yield (dict(rec, group=f"copy {nbytes >> 20} MiB", impl="copy"),
           (lambda: b.data.copy_from_device_async(a.data, nbytes)) if env.cuda else
           (lambda: np.copyto(b, a)), xp.__name__, 2 * nbytes)
    At, Bt, Ct = env.randn(n, n), env.randn(n, n), env.randn(n, n)
    A, B, C = (env.to_xp(t) for t in (At, Bt, Ct))
    rec["group"] = f"sgemm {n}^3"
    yield dict(rec, impl=f"{xp.__name__}.matmul"), lambda: xp.matmul(A, B, out=C), \
        xp.__name__, 2 * n ** 3
    yield dict(rec, impl="torch.mm"), lambda: env.torch.mm(At, Bt, out=Ct), "torch", 2 * n ** 3


# ------------------------------------------------------------------------- report
def _rate(r, kind):
    return "-" if r is None else f"{r / 1e3:.3g}" if kind in ("conv", "TFLOP/s") else f"{r:.3g}"


def _cell(c, ratio):
    if ratio is not None:
        return f"{ratio:.2f}" + "!" * bool(c.get("flag"))
    return "" if c is None else "err" if c.get("error") else "skip" if c.get("skipped") else "-"


def markdown(res):
    cases, v = res["cases"], res["versions"]
    ceil = {c["impl"]: c["rate"] for c in cases if c["kind"] == "ceiling" and c.get("rate")}
    sgemm = max((r for i, r in ceil.items() if i != "copy"), default=None)
    out = [f"# fastconv `{res['backend']}` vs PyTorch on {res['device']}", "",
           ", ".join(f"{k} {v[k]}" for k in ("torch", "torch_cuda", "cudnn", "cupy", "numpy", "git")
                     if v.get(k)) + f"; TF32 {v['tf32']}, CUPY_TF32={v.get('CUPY_TF32')}.", "",
           "## Ceilings", "", "| ceiling | impl | median ms | rate |", "|---|---|---|---|"]
    for c in (c for c in cases if c["kind"] == "ceiling"):
        unit = "GB/s" if c["impl"] == "copy" else "TFLOP/s"
        out.append(f"| {c['group']} | {c['impl']} | {c['median_ms'] or float('nan'):.3f} | "
                   + (f"{_rate(c['rate'], unit)} {unit} |" if c.get("rate") else
                      f"{c.get('error') or 'skipped'} |"))
    for kind, title, ceiling, cname in (
            ("conv", "Convolution (TFLOP/s of direct-convolution FLOPs)", sgemm, "SGEMM"),
            ("pool", "Pooling (GB/s)", ceil.get("copy"), "copy")):
        groups = {}
        for c in (c for c in cases if c["kind"] == kind):
            groups.setdefault((c["group"], c["direction"]), {})[c["impl"]] = c
        if not groups:
            continue
        impls = list(dict.fromkeys(i for g in groups.values() for i in g if i not in TORCH))
        out += ["", f"## {title}", "", f"ratio = peer median time / fastconv median time (> 1: "
                f"fastconv faster); peer = the faster PyTorch layout; % {cname} = best fastconv "
                f"rate / {cname} ceiling; ! rel_err > {FLAG}, err error, skip budget spent.", "",
                f"| case | peer | peer rate | best | best ratio | best rate | % {cname} | "
                + " | ".join(impls) + " |", "|---" * (7 + len(impls)) + "|"]
        for (group, direction), g in groups.items():
            peer = min((g[i] for i in TORCH if g.get(i, {}).get("median_ms")),
                       key=lambda c: c["median_ms"], default=None)
            ratios = {i: peer["median_ms"] / g[i]["median_ms"] for i in impls
                      if peer and g.get(i, {}).get("median_ms")}
            best = max(ratios, key=ratios.get, default=None)
            rate = g[best]["rate"] if best else None
            out.append(f"| {group} {direction} | {peer['impl'][6:] if peer else '-'} | "
                       f"{_rate(peer and peer['rate'], kind)} | {best or '-'} | "
                       + (f"**{ratios[best]:.2f}** | " if best else "- | ") + _rate(rate, kind)
                       + f" | {f'{rate / ceiling:.0%}' if rate and ceiling else '-'} | "
                       + " | ".join(_cell(g.get(i), ratios.get(i)) for i in impls) + " |")
    out += ["", f"{len(cases)} cases, {sum(bool(c.get('skipped')) for c in cases)} skipped "
            f"(budget {res['settings']['budget_s']:g} s), {res['elapsed_s']:.0f} s in all."]
    out += [f"- {c['group']} {c['direction']} {c['impl']}: " + (c["error"] or "")
            + (f"rel_err {c['rel_err']:.2e}" if c.get("flag") else "")
            for c in cases if c.get("error") or c.get("flag")]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--backend", help="fastconv backend (default: cupy; cython with --device cpu)")
    p.add_argument("--out", metavar="DIR", help="write DIR/gpu-<device>.json and .md")
    p.add_argument("--budget-s", type=float, default=150.0, help="cases after this are skipped")
    p.add_argument("--case-s", type=float, help="timing cap per case (default 1.5; cpu 0.3)")
    p.add_argument("--warmup", type=int, help="calls before timing (default 3; cpu 1)")
    p.add_argument("--repeat", type=int, help="timed calls at most (default 20; cpu 3)")
    p.add_argument("--quick", action="store_true", help="batches / 16, small CPU ceilings")
    p.add_argument("--only", default="", help="only layers whose name contains this")
    p.add_argument("--report", metavar="JSON", help="print the markdown of a saved run")
    args = p.parse_args(argv)
    if args.report:
        return print(markdown(json.loads(Path(args.report).read_text())), end="")
    cpu = args.device == "cpu"
    args.case_s = args.case_s or (0.3 if cpu else 1.5)
    args.warmup = args.warmup or (1 if cpu else 3)
    args.repeat = args.repeat or (3 if cpu else 20)
    env = Env(args)
    torch = env.torch
    torch.manual_seed(0)

    def shrink(layer):
        return dataclasses.replace(layer, batch=max(1, layer.batch // 16)) if args.quick else layer

    def impls(layer):
        return [*TORCH] + [f"{env.backend}-{a}" for a in algorithms(layer)]
    only = args.only.lower()
    pools = [(name, shrink(l), m, d) for name, l, m in POOLS for d in ("forward", "backward")
             if only in name.lower()]
    convs = [(shrink(l), d) for l in CONV_LAYERS for d in ("forward", "backward")
             if only in l.name.lower()]
    res = dict(device=env.name, mode=args.device, backend=env.backend, versions=env.versions(),
               settings={k: getattr(args, k) for k in ("budget_s", "case_s", "warmup", "repeat",
                                                      "quick", "only")},
               notes=NOTES, cases=[], elapsed_s=0)
    out = Path(args.out) if args.out else None

    def save():   # after every layer: a killed run still leaves its results
        res["elapsed_s"] = time.perf_counter() - T0
        try:
            if out:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"gpu-{env.slug}.json").write_text(json.dumps(res, indent=1, default=str))
                (out / f"gpu-{env.slug}.md").write_text(markdown(res))
        except Exception as exc:  # noqa: BLE001 -- keep measuring
            print(f"cannot save: {exc!r}", file=sys.stderr)
    runner = Runner(env, 3 + 3 * len(pools) + sum(len(impls(l)) for l, _ in convs), save)
    res["cases"] = runner.cases
    with torch.no_grad():
        runner.group(dict(group="ceilings", kind="ceiling", direction=""), ["all"],
                     lambda: ceiling_cases(env))
        if env.cuda:
            env.xp.get_default_memory_pool().free_all_blocks()
            torch.cuda.empty_cache()
        for name, l, m, d in pools:   # cheap, so before the convolutions: never skipped
            runner.group(dict(group=name, kind="pool", direction=d), [*TORCH, env.backend],
                         lambda: pool_cases(env, name, l, m, d))
        for l, d in convs:
            runner.group(dict(group=l.name, kind="conv", direction=d), impls(l),
                         lambda: conv_cases(env, l, d))
    save()
    md = markdown(res)
    print(md, end="")


if __name__ == "__main__":
    main()
