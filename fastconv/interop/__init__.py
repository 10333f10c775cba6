"""fastconv's kernels inside other array libraries, each bridge optional and imported on its own.

- :mod:`fastconv.interop.dlpack`: the rule that lets :mod:`fastconv.functional` take any DLPack
  or CUDA-array-interface array (PyTorch, JAX, CuPy, Numba) and return the same library's arrays;
- :mod:`fastconv.interop.torch`: ``torch.library`` custom ops with autograd, and drop-in
  ``Conv2d`` / ``MaxPool2d`` / ``AvgPool2d`` modules (needs PyTorch);
- :mod:`fastconv.interop.jax`: ``conv2d`` under ``jax.jit`` and ``jax.grad`` (needs JAX).
"""
