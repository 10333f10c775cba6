"""The autotuner behind ``algorithm='auto'``: time each algorithm that applies to a call once,
keep the fastest whose workspace fits the limit, and remember the choice on disk.

Off by default, as cuDNN's benchmark mode is: a timed choice depends on the machine's load, and
two algorithms differ in the last bits, so tuned runs are not bit-reproducible from one machine
(or cache) to the next. Off, ``auto`` follows the static rule of
:func:`fastconv.functional.choose_algorithm`. On: ``fastconv.tune.enable()`` or
``FASTCONV_TUNE=1``. Only the CPU backends are tuned.

One entry per case (direction, backend, dtype, threads, geometry) in ``tune.json`` under
:func:`fastconv._config.cache_dir`: the winner, and each candidate's best time (seconds) and
workspace (peak bytes NumPy allocated during the call beyond its outputs, as tracemalloc sees
it). :func:`entries` shows them, :func:`clear` forgets them.
"""
import json
import os
import time
import tracemalloc
import warnings

from fastconv._config import cache_dir, get_num_threads
from fastconv.backends import _recycled

TUNED_BACKENDS = ("cython", "numba")
_state = {"on": os.environ.get("FASTCONV_TUNE", "") not in ("", "0"),
          "limit": 256 << 20, "entries": None}
_ROUNDS = 3


def enable(on=True, workspace_limit=None):
    """Turn tuning on (or off); ``workspace_limit`` (bytes, default 256 MiB) bounds the extra
    memory a chosen algorithm may use (the smallest one is taken if none fits)."""
    _state["on"] = bool(on)
    if workspace_limit is not None:
        if workspace_limit < 0:
            raise ValueError(f"workspace_limit must be >= 0 bytes, got {workspace_limit}")
        _state["limit"] = int(workspace_limit)


def enabled():
    return _state["on"]


def path():
    """The file the tuned choices live in."""
    return cache_dir() / "tune.json"


def entries():
    """``{case: {"algorithm", "seconds", "workspace_bytes"}}`` for every tuned case."""
    if _state["entries"] is None:
        _state["entries"] = _load()
    return dict(_state["entries"])


def clear():
    """Forget every tuned choice, in memory and on disk."""
    _state["entries"] = {}
    path().unlink(missing_ok=True)


def case_key(direction, backend, dtype, g, need_input_grad=True):
    """The name of one tuned case: everything that can change the winner."""
    return (f"{direction}{'' if need_input_grad else '-weights'} {backend} {dtype} "
            f"threads={get_num_threads()} n={g.n} {g.h}x{g.w}x{g.c}->{g.o} k={g.kh}x{g.kw} "
            f"s={g.sh}x{g.sw} pad={g.pt},{g.pb},{g.pl},{g.pr} dil={g.dil_h}x{g.dil_w} "
            f"groups={g.groups}")


def choose(key, candidates, run):
    """The tuned algorithm of case ``key`` among ``candidates``; ``run(algorithm)`` runs the
    call once with that algorithm (its result is discarded)."""
    known = entries().get(key)
    if known is not None and known["algorithm"] in candidates:
        return known["algorithm"]
    seconds, space = {}, {}
    for algorithm in candidates:
        run(algorithm)                      # warm-up: compilation, first-touch of workspaces
        space[algorithm] = workspace_bytes(lambda: run(algorithm))
        seconds[algorithm] = min(_timed(run, algorithm) for _ in range(_ROUNDS))
    fits = [a for a in candidates if space[a] <= _state["limit"]] or \
        [min(candidates, key=space.get)]
    best = min(fits, key=seconds.get)
    _state["entries"][key] = {"algorithm": best, "seconds": seconds, "workspace_bytes": space}
    _save()
    return best


def _timed(run, algorithm):
    t = time.perf_counter()
    run(algorithm)
    return time.perf_counter() - t


def workspace_bytes(fn):
    """Peak bytes NumPy allocates while ``fn()`` runs (any thread) beyond the arrays it returns
    (allocated anew: no output is recycled from an earlier call)."""
    _recycled.clear()
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    outs = out if isinstance(out, tuple) else (out,)
    return max(0, peak - sum(getattr(a, "nbytes", 0) for a in outs))


def _load():
    try:
        data = json.loads(path().read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warnings.warn(f"fastconv.tune: ignoring the unreadable cache {path()} ({err}); "
                      "cases are tuned again", RuntimeWarning, stacklevel=3)
        return {}


def _save():
    target = path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_state["entries"], indent=1, sort_keys=True))
        os.replace(tmp, target)
    except OSError as err:
        warnings.warn(f"fastconv.tune: cannot write {target} ({err}); choices are kept in "
                      "memory only", RuntimeWarning, stacklevel=3)
