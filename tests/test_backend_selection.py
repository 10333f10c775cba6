"""Choosing a backend: per call, per block, per process and from FASTCONV_BACKEND."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import backends

X = np.random.default_rng(0).standard_normal((1, 5, 5, 2))
W = np.random.default_rng(1).standard_normal((3, 3, 2, 3))


def test_use_backend_is_scoped_and_nests(monkeypatch):
    calls = []
    ref = backends.get("reference")
    monkeypatch.setattr(ref, "conv2d", lambda *a: calls.append("reference") or np.zeros((1, 3, 3, 3)),
                        raising=False)
    before = fastconv.get_backend()
    with fastconv.use_backend("reference"):
        assert fastconv.get_backend() == "reference"
        fastconv.conv2d(X, W)
        with fastconv.use_backend("cython"):
            assert fastconv.get_backend() == "cython"
        assert fastconv.get_backend() == "reference"
    assert fastconv.get_backend() == before and calls == ["reference"]


def test_set_backend_changes_the_default():
    before = fastconv.get_backend()
    try:
        fastconv.set_backend("reference")
        assert fastconv.get_backend() == "reference"
    finally:
        fastconv.set_backend(before)
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        fastconv.set_backend("gpu")


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_environment_variable_sets_the_default(name):
    if name not in backends.available():
        pytest.skip(f"backend {name!r} not installed")
    env = dict(os.environ, FASTCONV_BACKEND=name)
    out = subprocess.run([sys.executable, "-c", "import fastconv; print(fastconv.get_backend())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == name


def test_cupy_without_a_gpu_names_the_installed_backends():
    if "cupy" in backends.available():
        pytest.skip("a GPU is present: the cupy backend loads")
    with pytest.raises(fastconv.BackendUnavailableError, match="Installed backends"):
        fastconv.conv2d(X, W, backend="cupy")


def test_set_num_threads_is_validated_and_kept():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    try:
        assert fastconv.get_num_threads() == 1
        np.testing.assert_allclose(fastconv.conv2d(X, W), fastconv.conv2d(X, W, backend="reference"))
    finally:
        fastconv.set_num_threads(before)
    with pytest.raises(ValueError, match="positive int"):
        fastconv.set_num_threads(0)


@pytest.mark.parametrize("n", [1, 2])
def test_one_thread_setting_reaches_openmp_numba_and_blas(n):
    """No oversubscription: BLAS, the OpenMP runtime of the Cython kernels and Numba all take
    the count set (threadpoolctl reports every loaded OpenMP and BLAS runtime)."""
    from threadpoolctl import threadpool_info
    from fastconv.kernels.cython import threads
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(n)
    try:
        fastconv.conv2d(X, W)           # loads BLAS and the kernels' OpenMP runtime
        pools = threadpool_info()
        assert {p["user_api"] for p in pools} >= {"blas"}
        assert {p["num_threads"] for p in pools} == {n}, pools
        assert threads.get_max_threads() == n
        if "numba" in fastconv.available_backends():
            import numba
            assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)
    finally:
        fastconv.set_num_threads(before)


@pytest.mark.parametrize("env, expected", [
    ({}, "10000"),
    ({"GOMP_SPINCOUNT": "5"}, "5"),
    ({"OMP_WAIT_POLICY": "active"}, None),
])
def test_openmp_spin_is_capped_unless_the_user_chose(env, expected, tmp_path):
    """The kernels cap how long idle OpenMP threads spin (they spun through the BLAS workers'
    phases), leaving the user's own GOMP_SPINCOUNT or OMP_WAIT_POLICY alone. (Run outside the
    source tree, whose ``fastconv`` has no compiled kernels.)"""
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = "import os, fastconv.kernels.cython.threads; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env=base | env, cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(expected)
