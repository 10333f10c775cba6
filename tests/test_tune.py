"""The autotuner: it times the applicable algorithms, picks the fastest that fits the workspace
limit, keeps the choice on disk, and leaves results correct."""
import json

import numpy as np
import pytest

import fastconv
from fastconv import tune


@pytest.fixture(autouse=True)
def tuner(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path))
    monkeypatch.setattr(tune, "_state", {"on": True, "limit": 256 << 20, "entries": None})
    return tmp_path / "tune.json"


def _arrays(rng, shape=(2, 9, 8, 3), filt=(3, 3, 3, 5)):
    return rng.standard_normal(shape), rng.standard_normal(filt)


def _reference(x, w):
    return fastconv.conv2d(x, w, padding="same", backend="reference")


def _fake_times(monkeypatch, seconds):
    calls = []

    def timed(run, algorithm):
        calls.append(algorithm)
        run(algorithm)
        return seconds.get(algorithm, 10.0)    # every other applicable algorithm: slow
    monkeypatch.setattr(tune, "_timed", timed)
    return calls


def test_picks_the_fastest_and_remembers_it_on_disk(monkeypatch, tuner):
    x, w = _arrays(np.random.default_rng(0))
    calls = _fake_times(monkeypatch, {"direct": 1.0, "im2col": 2.0})
    y = fastconv.conv2d(x, w, padding="same")
    np.testing.assert_allclose(y, _reference(x, w), rtol=1e-12, atol=1e-12)
    (key, entry), = tune.entries().items()
    assert entry["algorithm"] == "direct" and set(entry["seconds"]) >= {"direct", "im2col"}
    assert key.startswith("forward cython float64 threads=")
    assert json.loads(tuner.read_text()) == tune.entries()
    timed = len(calls)
    fastconv.conv2d(x, w, padding="same")
    assert len(calls) == timed                     # cached: no second round of timing
    monkeypatch.setattr(tune, "_state", {"on": True, "limit": 256 << 20, "entries": None})
    assert tune.entries() == json.loads(tuner.read_text())   # a new process reads the file


def test_backward_cases_are_separate(monkeypatch):
    x, w = _arrays(np.random.default_rng(1))
    _fake_times(monkeypatch, {"direct": 2.0, "im2col": 1.0})
    dy = np.ones((2, 9, 8, 5))
    g = fastconv.conv2d_backward(dy, x, w, padding="same")
    ref = fastconv.conv2d_backward(dy, x, w, padding="same", algorithm="direct")
    for got, want in zip(g, ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    fastconv.conv2d_backward(dy, x, w, padding="same", need_input_grad=False)
    keys = sorted(tune.entries())
    assert [k.split()[0] for k in keys] == ["backward", "backward-weights"]
    assert {e["algorithm"] for e in tune.entries().values()} == {"im2col"}


def test_workspace_limit_takes_the_smallest_when_none_fits(monkeypatch):
    x, w = _arrays(np.random.default_rng(2), (4, 16, 16, 8), (3, 3, 8, 8))
    _fake_times(monkeypatch, {"direct": 2.0, "im2col": 1.0})
    tune.enable(workspace_limit=0)
    fastconv.conv2d(x, w, padding="same")
    entry, = tune.entries().values()
    space = entry["workspace_bytes"]
    assert space["im2col"] > space["direct"]
    assert entry["algorithm"] == min(space, key=space.get)


def test_off_means_the_static_rule(monkeypatch, tuner):
    tune.enable(False)
    x, w = _arrays(np.random.default_rng(3))
    fastconv.conv2d(x, w, padding="same")
    assert tune.entries() == {} and not tuner.exists()


def test_clear_and_a_corrupt_cache(monkeypatch, tuner):
    x, w = _arrays(np.random.default_rng(4))
    _fake_times(monkeypatch, {"direct": 1.0, "im2col": 2.0})
    tuner.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="unreadable cache"):
        fastconv.conv2d(x, w, padding="same")
    assert len(json.loads(tuner.read_text())) == 1      # rebuilt
    tune.clear()
    assert tune.entries() == {} and not tuner.exists()


def test_forced_algorithms_are_not_tuned(monkeypatch):
    x, w = _arrays(np.random.default_rng(5))
    fastconv.conv2d(x, w, padding="same", algorithm="im2col")
    assert tune.entries() == {}


def test_bad_limit():
    with pytest.raises(ValueError, match="workspace_limit"):
        tune.enable(workspace_limit=-1)
