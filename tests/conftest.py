"""Shared fixtures: every fast backend installed here, each test run once per backend."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from fastconv import backends

settings.register_profile(
    "default", max_examples=int(os.environ.get("FASTCONV_EXAMPLES", 25)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("default")

FAST_BACKENDS = [name for name in backends.NAMES if name != "reference"]


def _backend_param(name):
    try:
        backends.get(name)
    except ImportError as err:
        reason = f"backend {name!r} not installed: {err.__cause__ or err}"
        return pytest.param(name, marks=pytest.mark.skip(reason=reason))
    return pytest.param(name)


CPU_BACKEND_PARAMS = [_backend_param(n) for n in ("reference", "cython", "numba")]


@pytest.fixture(params=[_backend_param(n) for n in FAST_BACKENDS])
def backend(request):
    """Name of one fast backend (cython, numba, cupy); skipped with the reason if not installed."""
    return request.param


@pytest.fixture
def xp(backend):
    """The array module of the backend under test."""
    if backend == "cupy":
        import cupy
        return cupy
    return np


def to_numpy(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)
