"""Large outputs are recycled only once nothing references them (fastconv/backends/_recycled.py)."""
import numpy as np
import pytest

import fastconv
from fastconv.backends import _recycled
from conftest import CPU_BACKEND_PARAMS

BACKENDS = [p for p in CPU_BACKEND_PARAMS if p.values[0] != "reference"]


@pytest.fixture
def small_bound(monkeypatch):
    """Recycle from 64 KiB on, so that small test arrays take the recycled path."""
    monkeypatch.setattr(_recycled, "BOUND", 1 << 16)
    monkeypatch.setattr(_recycled, "_kept", {})


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_held_anywhere_are_never_reused(backend, small_bound):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 20, 20, 48), np.float32)
    w = rng.standard_normal((3, 3, 48, 32), np.float32)

    def conv(x):
        return fastconv.conv2d(x, w, padding="same", algorithm="direct", backend=backend)

    y1 = conv(x)
    kept = y1.copy()
    y2 = conv(-x)                        # y1 is held: a new buffer
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, kept)
    view = y1[1:3]                       # a view keeps its base alive
    del y1
    y3 = conv(2 * x)
    assert not np.shares_memory(view, y3)
    np.testing.assert_array_equal(view, kept[1:3])
    data = {y2.ctypes.data, y3.ctypes.data}
    del y3, y2
    y4 = conv(x)                         # nothing holds the last two: their memory comes back
    assert y4.ctypes.data in data
    np.testing.assert_allclose(y4, kept, rtol=0, atol=0)


def test_a_loop_holding_its_last_result_recycles_two_buffers(small_bound):
    seen = set()
    y = None
    for _ in range(6):
        y = _recycled.empty((1 << 15,), np.float32)   # the last y is held while this runs
        seen.add(y.ctypes.data)
    assert len(seen) == 2


def test_per_kind_arrays_of_one_shape_held_at_once_come_back(small_bound):
    """A training step holds several activations of one shape at once: all come back."""
    held = [_recycled.empty((1 << 15,), np.float32) for _ in range(_recycled.PER_KIND + 1)]
    kept = {a.ctypes.data for a in held[1:]}    # the last PER_KIND made
    del held
    again = [_recycled.empty((1 << 15,), np.float32) for _ in range(_recycled.PER_KIND)]
    assert {a.ctypes.data for a in again} == kept


def test_only_arrays_past_the_bound_are_kept(small_bound):
    a = _recycled.empty((8, 8), np.float64)
    assert a.shape == (8, 8) and a.dtype == np.float64
    assert not _recycled._kept                  # under the bound: a plain new array
    b = _recycled.empty((1 << 15,), np.float32)  # 128 KiB: kept
    assert b.dtype == np.float32 and list(_recycled._kept) == [((1 << 15,), np.float32)]
    [kept] = _recycled._kept[(1 << 15,), np.dtype(np.float32)]
    assert kept is b


def test_at_most_keep_arrays_stay_allocated(small_bound):
    for k in range(_recycled.KEEP + 3):
        _recycled.empty((1 << 15, k + 1), np.float32)
    assert len(_recycled._kept) == _recycled.KEEP
    assert [s for s, _ in _recycled._kept] == [(1 << 15, k + 1)
                                               for k in range(3, 3 + _recycled.KEEP)]



def test_workspace_bytes_sees_outputs_allocated_anew(small_bound):
    """``tune.workspace_bytes`` takes a recycled output off the peak only once it is new."""
    from fastconv.tune import workspace_bytes

    def fn():
        tmp = np.ones(1 << 14, np.float32)           # 64 KiB of workspace
        out = _recycled.empty((1 << 16,), np.float32)  # 256 KiB: past the bound
        out[:] = tmp[0]
        return out
    fn()                                             # kept: a next call would recycle it
    assert 64 << 10 <= workspace_bytes(fn) < 68 << 10
