"""The functional ops on any DLPack array (fastconv.interop.dlpack): arrays of library L in →
arrays of library L out, equal to the NumPy path, reading and returning memory without copies;
the torch and JAX bridges stay optional."""
import importlib
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv.interop.dlpack import is_foreign, to_kernel_array

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 7, 6, 4))          # NHWC
W = RNG.standard_normal((3, 2, 2, 6))          # HWIO, groups=2
B = RNG.standard_normal(6)
CONV = dict(strides=(1, 2), padding="same", dilation=(2, 1), groups=2)

# op(x-like arrays) → the NumPy result, for every functional op
CASES = {
    "conv2d": lambda x, w, b: fastconv.conv2d(x, w, b, **CONV),
    "conv2d_channels_first": lambda x, w, b: fastconv.conv2d(
        x.permute(0, 3, 1, 2) if hasattr(x, "permute") else x.transpose(0, 3, 1, 2),
        w.permute(3, 2, 0, 1) if hasattr(w, "permute") else w.transpose(3, 2, 0, 1),
        b, data_format="channels_first", **CONV),
    "conv2d_backward": lambda x, w, b: fastconv.conv2d_backward(
        fastconv.conv2d(x, w, **CONV), x, w, **CONV),
    "max_pool2d": lambda x, w, b: fastconv.max_pool2d(x, 3, 2, "same"),
    "avg_pool2d": lambda x, w, b: fastconv.avg_pool2d(x, 2),
    "max_pool2d_backward": lambda x, w, b: fastconv.max_pool2d_backward(
        fastconv.max_pool2d(x, 2), x, 2),
    "avg_pool2d_backward": lambda x, w, b: fastconv.avg_pool2d_backward(
        fastconv.avg_pool2d(x, 2, 1), x, 2, 1),
    "global_avg_pool2d": lambda x, w, b: fastconv.global_avg_pool2d(x),
    "global_avg_pool2d_backward": lambda x, w, b: fastconv.global_avg_pool2d_backward(
        fastconv.global_avg_pool2d(x), x),
}


def _results(out):
    return [r for r in (out if isinstance(out, tuple) else (out,)) if r is not None]


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install '.[torch]'")


@pytest.fixture
def jax():
    return pytest.importorskip("jax", reason="JAX is not installed: pip install '.[jax]'")


# ---------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("op", CASES)
def test_torch_tensors_in_torch_tensors_out(torch, op):
    expected = CASES[op](X, W, B)
    got = CASES[op](*(torch.from_numpy(a) for a in (X, W, B)))
    assert isinstance(got, tuple) == isinstance(expected, tuple)  # Conv2DGrads stays
    for g, e in zip(_results(got), _results(expected), strict=True):
        assert isinstance(g, torch.Tensor) and g.dtype == torch.float64
        np.testing.assert_array_equal(g.numpy(), e)


def test_torch_tensor_is_read_in_place(torch):
    t = torch.arange(24.0).reshape(2, 3, 4)
    view = to_kernel_array(t, "x")
    assert view.ctypes.data == t.data_ptr()
    t[0, 0, 0] = -5.0
    assert view[0, 0, 0] == -5.0


def test_kernels_read_and_return_torch_memory_without_copies(torch, monkeypatch):
    backend = fastconv.backends.get(fastconv.get_backend())
    seen = {}
    real = backend.conv2d

    def spy(x, w, g, algorithm, *epilogue):
        y = real(x, w, g, algorithm, *epilogue)
        seen.update(x=x.ctypes.data, w=w.ctypes.data, y=y.ctypes.data)
        return y
    monkeypatch.setattr(backend, "conv2d", spy)
    x, w, b = (torch.from_numpy(a.astype(np.float32)) for a in (X, W, B))
    y = fastconv.conv2d(x, w, b, **CONV)
    assert (seen["x"], seen["w"], seen["y"]) == (x.data_ptr(), w.data_ptr(), y.data_ptr())


def test_non_contiguous_tensors_are_copied_once(torch):
    wide = torch.from_numpy(RNG.standard_normal((2, 7, 12, 4)))
    x = wide[:, :, ::2]
    assert not x.is_contiguous()
    got = fastconv.conv2d(x, torch.from_numpy(W), groups=2)
    np.testing.assert_array_equal(got.numpy(), fastconv.conv2d(x.numpy(), W, groups=2))


def test_mixed_libraries_follow_the_first_foreign_array(torch):
    y = fastconv.conv2d(X, torch.from_numpy(W), B, **CONV)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_array_equal(y.numpy(), fastconv.conv2d(X, W, B, **CONV))


def test_unreadable_tensors_raise_type_error(torch):
    with pytest.raises(TypeError, match="detach"):
        fastconv.conv2d(torch.ones(1, 3, 3, 1, requires_grad=True), np.ones((1, 1, 1, 1)))
    with pytest.raises(TypeError, match="x has dtype float16"):
        fastconv.conv2d(torch.ones(1, 3, 3, 1, dtype=torch.float16), np.ones((1, 1, 1, 1)))


# ---------------------------------------------------------------------- JAX
@pytest.mark.parametrize("op", ["conv2d", "conv2d_backward", "max_pool2d_backward"])
def test_jax_arrays_in_jax_arrays_out(jax, op):
    x, w, b = (a.astype(np.float32) for a in (X, W, B))
    expected = CASES[op](x, w, b)
    got = CASES[op](*(jax.numpy.asarray(a) for a in (x, w, b)))
    for g, e in zip(_results(got), _results(expected), strict=True):
        assert isinstance(g, jax.Array) and g.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(g), e)


def test_jax_array_is_read_in_place(jax):
    a = jax.numpy.arange(24.0).reshape(2, 3, 4)
    assert to_kernel_array(a, "x").ctypes.data == a.unsafe_buffer_pointer()


# ---------------------------------------------------------------------- Numba / CUDA
def test_numba_device_arrays_in_numba_device_arrays_out():
    cuda = pytest.importorskip("numba.cuda", reason="Numba is not installed")
    pytest.importorskip("cupy", reason="CuPy is not installed: Numba device arrays run on the "
                                       "'cupy' backend")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU: Numba device arrays need one")
    y = fastconv.conv2d(cuda.to_device(X), cuda.to_device(W), cuda.to_device(B), **CONV)
    assert cuda.is_cuda_array(y)
    np.testing.assert_allclose(y.copy_to_host(), fastconv.conv2d(X, W, B, **CONV), rtol=1e-10)


def test_cuda_arrays_need_the_cupy_backend():
    pytest.importorskip("numba", reason="Numba is not installed")
    if "cupy" in fastconv.available_backends():
        pytest.skip("the 'cupy' backend runs here")

    class DeviceArray:  # what fastconv sees of a Numba device array
        __module__ = "numba.cuda.cudadrv.devicearray"
        __cuda_array_interface__ = {}
    with pytest.raises(fastconv.BackendUnavailableError, match="'cupy'"):
        fastconv.conv2d(DeviceArray(), W)


# ---------------------------------------------------------------------- the rule's edges
class _OtherDevice:
    """An array that DLPack places on OpenCL memory (device type 4)."""
    __array_namespace__ = staticmethod(lambda: np)
    __dlpack__ = staticmethod(lambda **kwargs: None)
    __dlpack_device__ = staticmethod(lambda: (4, 0))


def test_unsupported_device_raises_type_error():
    with pytest.raises(TypeError, match="DLPack device type 4"):
        fastconv.conv2d(_OtherDevice(), W)


def test_numpy_arrays_pass_through():
    assert not is_foreign(X) and not is_foreign([1.0]) and not is_foreign(None)
    y = fastconv.conv2d(X, W, B, **CONV)
    assert type(y) is np.ndarray


def test_import_fastconv_loads_no_array_library(tmp_path):
    code = ("import sys, numpy as np, fastconv; fastconv.conv2d(np.ones((1, 3, 3, 1)), "
            "np.ones((1, 1, 1, 1))); "
            "print(sorted(m for m in ('torch', 'jax', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)   # the installed package, not the source tree
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("bridge, library", [("torch", "torch"), ("jax", "jax")])
def test_bridges_without_their_library_raise_import_error(monkeypatch, bridge, library):
    monkeypatch.setitem(sys.modules, library, None)  # as if not installed
    monkeypatch.delitem(sys.modules, f"fastconv.interop.{bridge}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'fastconv\[{bridge}\]'"):
        importlib.import_module(f"fastconv.interop.{bridge}")
