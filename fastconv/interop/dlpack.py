"""Arrays of library L in → arrays of library L out: the conversion rule of the functional ops.

- NumPy and CuPy arrays, and anything without ``__dlpack__`` or ``__cuda_array_interface__``
  (lists, scalars), pass through unchanged.
- Any other array is viewed without a copy: CPU memory as a NumPy array (``np.from_dlpack``),
  CUDA memory as a CuPy array (``cupy.from_dlpack``, or ``cupy.asarray`` for objects that only
  have ``__cuda_array_interface__``, such as Numba device arrays), on its own device and CuPy's
  current stream (DLPack orders the producer's stream before it).
- The kernels read C-contiguous memory in their layout (NHWC activations, HWIO weights): inputs
  laid out so are used in place, any other input is copied once, as a NumPy array would be.
- Results go back through L's own ``from_dlpack`` (``torch.from_dlpack``,
  ``jax.numpy.from_dlpack``: found through ``__array_namespace__`` or L's top-level module;
  Numba device arrays through ``numba.cuda.as_cuda_array``), without a copy where L can share
  the memory. L is the library of the first such foreign array among the op's array arguments.
"""
import contextlib
import functools
import importlib
import inspect

import numpy as np

from fastconv import backends

_CPU, _CUDA = 1, 2  # DLPack device types kDLCPU, kDLCUDA


def is_foreign(a):
    """True for an array fastconv must convert: DLPack or CUDA array interface, not NumPy/CuPy."""
    return (not isinstance(a, np.ndarray) and not type(a).__module__.startswith("cupy")
            and (hasattr(a, "__dlpack__") or hasattr(a, "__cuda_array_interface__")))


def to_kernel_array(a, name):
    """A NumPy (CPU) or CuPy (CUDA) view of the foreign array ``a``, without a copy."""
    try:
        if hasattr(a, "__dlpack__"):
            device = a.__dlpack_device__()[0]
            if device == _CPU:
                return np.from_dlpack(a)
            if device == _CUDA:
                return _cupy().from_dlpack(a)
            raise TypeError(f"{name} lives on DLPack device type {int(device)}; fastconv runs "
                            "CPU (1) and CUDA (2) memory")
        return _cupy().asarray(a)
    except (BufferError, RuntimeError) as err:
        raise TypeError(f"cannot read {name} ({type(a).__name__}) through DLPack: {err}") from err


def converter(like, name):
    """A function turning a NumPy/CuPy result into an array of ``like``'s library."""
    namespace = (like.__array_namespace__() if hasattr(like, "__array_namespace__")
                 else importlib.import_module(type(like).__module__.split(".")[0]))
    if hasattr(namespace, "from_dlpack"):
        return namespace.from_dlpack
    if namespace.__name__ == "numba":
        from numba import cuda
        return cuda.as_cuda_array
    raise TypeError(f"{name} is a {type(like).__module__}.{type(like).__name__}, whose library "
                    "has no from_dlpack to return results in")


def accepts_any_array(*names):
    """Let the op's arguments ``names`` be arrays of any library (the module docstring's rule);
    its result, an array or a namedtuple of arrays and None, comes back in that library."""
    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def op(*args, **kwargs):
            if not any(map(is_foreign, args)) and not any(map(is_foreign, kwargs.values())):
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            foreign = [n for n in names if is_foreign(bound.arguments.get(n))]
            back = converter(bound.arguments[foreign[0]], foreign[0])
            for n in foreign:
                bound.arguments[n] = to_kernel_array(bound.arguments[n], n)
            with _device_of(bound.arguments[foreign[0]]):
                return _convert(fn(*bound.args, **bound.kwargs), back)
        return op
    return decorate


def _convert(result, back):
    if isinstance(result, tuple):
        return type(result)._make(None if r is None else back(r) for r in result)
    return back(result)


def _device_of(a):
    """Run on ``a``'s GPU when it is a CuPy array (a foreign CUDA array may be on any device)."""
    return a.device if type(a).__module__.startswith("cupy") else contextlib.nullcontext()


def _cupy():
    backends.get("cupy")  # CUDA arrays run on the 'cupy' backend: a clear error if it cannot
    import cupy
    return cupy
