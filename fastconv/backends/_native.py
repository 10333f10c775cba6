"""The algorithms, written once over a kernel set and an array module.

A backend is a set of kernels keeping the contract of ``kernels/README.md`` (Cython, Numba or
CUDA) plus the array module that owns its memory (NumPy or CuPy). This class turns them into
convolution and pooling: it allocates outputs, tiles the im2col workspace and calls BLAS
(``xp.matmul``) for the GEMMs. Inputs arrive validated and in the kernels' layout (NHWC
activations, HWIO weights, C-contiguous) from :mod:`fastconv.functional`.

Algorithms:
  ``direct``     one pass over the output, any geometry.
  ``im2col``     row tiles of the input unrolled into ``cols`` (``tile_bytes`` each: about an
                 L2 on the CPU, a bounded workspace on the GPU, where every tile costs
                 launches), one batched GEMM per tile over the groups; ``col2im`` for the input
                 gradient. On the CPU the batch is split into one range of whole images per
                 thread, and each thread runs its tiles with single-threaded kernels and BLAS:
                 alternating multi-threaded OpenMP and BLAS regions made the cores wait on each
                 other (bench/NOTES.md), and whole images keep ``col2im`` race-free.
  ``1x1``        1x1 filters without padding: the input *is* the column matrix (a strided view
                 subsampled for strides > 1): a GEMM, no unrolling; few outputs per group go to
                 the ``pointwise`` kernels, which read x once (BLAS packs it first).
  ``depthwise``  groups == channels, any depth multiplier.
"""
import math
from concurrent.futures import ThreadPoolExecutor

from fastconv.backends import _recycled
from fastconv.kernels import _adjoint

TILE_BYTES = 4 << 20   # the CPU backends' im2col tile
_pool = {}
_blas = []   # threadpoolctl's controller of the BLAS libraries, made on first use


class NativeBackend:
    def __init__(self, name, kernels, xp, set_num_threads=None, tile_bytes=TILE_BYTES):
        """``set_num_threads``: sets the calling thread's kernel threads (CPU backends only)."""
        self.name, self.tile_bytes = name, tile_bytes
        self.k = kernels
        self.xp = xp
        self.set_num_threads = set_num_threads

    def _output(self, shape, dtype):
        """A new output array; large host ones recycled once free (``_recycled``)."""
        return (_recycled.empty if self.xp.__name__ == "numpy" else self.xp.empty)(shape, dtype)

    # ---------------------------------------------------------------- convolution
    def conv2d(self, x, w, g, algorithm, b=None, relu=False):
        """The convolution, then its epilogue: ``+ b`` (None: no bias) and ReLU when ``relu``."""
        xp = self.xp
        y = self._output(g.output_shape, x.dtype)
        if algorithm == "direct":   # the epilogue on each row while it is in cache
            self.k.conv_direct.forward(x, w, y, *g.stride_args(), g.groups, b=b, relu=relu)
            b, relu = None, False
        elif algorithm == "depthwise":
            self.k.depthwise.forward(x, w, y, *g.stride_args(), b=b)    # the bias in its pass
            b = None
        elif algorithm == "1x1":
            self._forward_1x1(x, w, g, y, b, relu)
            b, relu = None, False
        elif algorithm == "winograd":
            self._winograd_kernels()
            with self._winograd_blas(g.n):
                self._winograd(x, w, y, g.pt, g.pl)
        else:
            wg, y_rows, flat = self._grouped(w, g), self._rows(y, g), y.reshape(-1, g.o)

            def tile(r0, cols, _):     # the GEMM, then the epilogue while the tile is in cache
                rows = slice(r0 * g.ow, r0 * g.ow + cols.shape[1])
                xp.matmul(cols, wg, out=y_rows[:, rows])
                self._tile_epilogue(flat[rows], b, relu)
            self._for_tiles(x, g, tile)
            b, relu = None, False
        if b is not None or relu:
            self.bias_act(y, b, relu)
        return y

    def conv2d_backward(self, gy, x, w, g, algorithm, need_input_grad=True):
        """Gradients ``(gx, gw, gb)`` of the convolution and of a bias; ``gx`` is None unless
        ``need_input_grad``. ``gb``, ``gy`` summed over its pixels, comes from the weight
        gradient's pass over gy where the kernels offer it (a separate pass read 29 MB for
        a third of cifar1's backward: bench/NOTES.md)."""
        xp = self.xp
        gx = self._output(g.input_shape, x.dtype) if need_input_grad else None
        gw = xp.empty(w.shape, x.dtype)
        gb = None
        if algorithm == "direct":
            gb = xp.empty(g.o, x.dtype)
            self.k.conv_direct.backward(gy, x, w, gx, gw, *g.stride_args(), g.groups, gb=gb)
        elif algorithm == "depthwise":
            gb = xp.empty(g.o, x.dtype)   # summed in the weight gradient's pass (CPU)
            self.k.depthwise.backward(gy, x, w, gx, gw, *g.stride_args(), gb=gb)
        elif algorithm == "1x1":
            gb = self._backward_1x1(gy, x, w, g, gx, gw)
        elif algorithm == "winograd":
            self._backward_winograd(gy, x, w, g, gx, gw)
        else:
            self._backward_im2col(gy, x, w, g, gx, gw)
        return gx, gw, self._pixel_sum(gy) if gb is None else gb

    @staticmethod
    def _pixel_sum(gy, rows=16):
        """``gy`` summed over its pixels (the bias gradient, where no kernel sums it in its pass
        over gy): ``rows`` pixels to a row, so that NumPy's inner loop runs over ``rows * O``
        values, then folded (2.7x the sum over the pixel axes on mnist2's 22 MB gy)."""
        *pixels, o = gy.shape
        n = math.prod(pixels)
        flat = gy.reshape(n, o)
        m = n - n % rows
        whole = flat[:m].reshape(m // rows, rows * o).sum(axis=0).reshape(rows, o).sum(axis=0)
        return whole + flat[m:].sum(axis=0)

    def _forward_1x1(self, x, w, g, y, b, relu):
        """Few outputs per group (kernel sets with ``pointwise``): its direct kernel, which reads
        x once, epilogue fused. Else row blocks of about ``tile_bytes`` per worker: a GEMM, then
        the epilogue in cache."""
        pw = self._pointwise(g)
        if pw:
            pw.forward(x, w, y, g.sh, g.sw, g.groups, b, relu)
            return
        xs, wg, ys = self._rows(self._subsample(x, g), g), self._grouped(w, g), self._rows(y, g)
        flat = y.reshape(-1, g.o)
        step = max(1, self.tile_bytes // ((g.c + g.o) * x.dtype.itemsize))

        def work(lo, hi):
            for r in range(lo, hi, step):
                end = min(r + step, hi)
                self.xp.matmul(xs[:, r:end], wg, out=ys[:, r:end])
                self._tile_epilogue(flat[r:end], b, relu)
        self._per_worker(g.n, g.oh * g.ow, work)

    def _pointwise(self, g):
        """The ``pointwise`` kernels for ``g`` if the kernel set has them and ``g`` has at most
        their ``MAX_OUTPUTS`` outputs per group, else None (the GEMMs)."""
        pw = getattr(self.k, "pointwise", None)
        return pw if pw is not None and g.o // g.groups <= pw.MAX_OUTPUTS else None

    def _backward_1x1(self, gy, x, w, g, gx, gw):
        """Returns the bias gradient where the kernel sums it in its pass over gy, else None."""
        pw = self._pointwise(g)
        if pw:
            gb = self.xp.empty(g.o, x.dtype)
            pw.backward_weight(gy, x, gw, g.sh, g.sw, g.groups, gb=gb)
            if gx is not None:
                pw.backward_input(gy, w, gx, g.sh, g.sw, g.groups)
            return gb
        xp = self.xp
        cols, dy = self._rows(self._subsample(x, g), g), self._rows(gy, g)
        xp.matmul(cols.swapaxes(1, 2), dy, out=self._grouped(gw, g))
        if gx is None:
            return None
        sub = gx if g.sh == g.sw == 1 else xp.empty((g.n, g.oh, g.ow, g.c), gx.dtype)
        xp.matmul(dy, self._grouped(w, g).swapaxes(1, 2), out=self._rows(sub, g))
        if sub is not gx:
            gx[...] = 0
            gx[:, ::g.sh, ::g.sw][:, :g.oh, :g.ow] = sub
        return None

    def _backward_im2col(self, gy, x, w, g, gx, gw):
        xp = self.xp
        wg, dy_rows = self._grouped(w, g), self._rows(gy, g)
        if gx is not None:
            gx[...] = 0

        def tile(r0, cols, gw_part):
            dy = dy_rows[:, r0 * g.ow:r0 * g.ow + cols.shape[1]]
            gw_part += xp.matmul(cols.swapaxes(1, 2), dy)
            if gx is not None:
                xp.matmul(dy, wg.swapaxes(1, 2), out=cols)
                self.k.im2col.col2im(cols, gx, r0, g.kh, g.kw, g.oh, g.ow, *g.stride_args())
        self._grouped(gw, g)[...] = sum(self._for_tiles(x, g, tile, wg.shape))

    # ---------------------------------------------------------------- winograd
    _winograd_bytes = 2 << 20   # the transformed input and output of one block of tiles
    _winograd_min_tiles = 64    # the least tiles per block (the GEMMs' rows)
    _winograd_fused_tiles = 36  # the tiles per block of the kernels' fused forward, ...
    _winograd_grad_tiles = 144  # ... and of their weight gradient

    def _winograd_blas(self, n):
        """Single-threaded BLAS for a call whose ``n`` images run on more than one thread: the
        workers' GEMMs (without the fused kernels) and the weight transforms (at 2 threads
        OpenBLAS took 2-50 ms, erratically, on their skinny ``(A, 3) @ (3, C*K)`` products: 1 ms
        on one thread)."""
        from contextlib import nullcontext
        if not self.set_num_threads or min(n, self._threads()) < 2:
            return nullcontext()
        return _one_blas_thread()

    def _winograd_kernels(self):
        if not hasattr(self.k, "winograd"):
            raise ValueError(f"algorithm 'winograd' has no kernels on the {self.name!r} backend; "
                             f"use 'im2col'")
        return self.k.winograd

    @staticmethod
    def _winograd_tile(oh, ow, dtype):
        """``m`` and ``G`` of Winograd F(m x m, 3x3) for an ``oh x ow`` output: the ``m`` in
        (2, 3, 4) with the fewest GEMM multiplies, ``(m + 2)^2`` per tile (the smaller on a tie:
        cheaper transforms, smaller rounding error; m = 3 takes 6x6 and 3x3 outputs, 100 and 25
        against 144 and 36). ``B^T`` and ``A^T`` live in the kernels."""
        import numpy as np
        m = min((2, 3, 4), key=lambda m: (m + 2) ** 2 * -(-oh // m) * -(-ow // m))
        gm = {2: [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
              3: [[1 / 2, 0, 0], [-1 / 2, -1 / 2, -1 / 2], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 6, 1 / 3, 2 / 3], [0, 0, 1]],
              4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]}[m]
        return m, np.array(gm, dtype)

    def _winograd(self, x, w, y, pt, pl):
        """``y`` = the stride-1 3x3 correlation of ``x`` with HWIO ``w`` (top/left padding
        ``pt, pl`` of either sign, the rest implied by ``y``) by Winograd F(m x m, 3x3): per block
        of tiles, transform the input patches, one GEMM per point, transform back."""
        xp, k = self.xp, self.k.winograd
        n, oh, ow, o = y.shape
        m, gm = self._winograd_tile(oh, ow, x.dtype)
        a, c = m + 2, x.shape[3]
        th, tw = -(-oh // m), -(-ow // m)
        fused = hasattr(k, "forward")
        # U[a*A + b] = (G w G^T)[a, b]: (A*A, C, K), or (A*A, ...) of the kernels' panels of w
        wt = k.panels(w) if fused else w
        u = xp.matmul(gm, (gm @ wt.reshape(3, -1)).reshape(a, 3, -1)).reshape(a * a, *wt.shape[2:])
        if fused:   # transforms and GEMMs per block of tiles in cache, on OpenMP's threads
            k.forward(x, u, y, 0, n * th * tw, m, pt, pl, self._winograd_fused_tiles)
            return

        def block(t0, v, mv, _):
            k.input_transform(x, v, t0, m, th, tw, pt, pl)
            xp.matmul(v, u, out=mv)
            k.output_transform(mv, y, t0, m)
        self._winograd_blocks(n, th * tw, a * a, (c, o), x.dtype, block)

    def _backward_winograd(self, gy, x, w, g, gx, gw):
        """The input gradient is the stride-1 correlation of ``gy`` with ``w`` flipped in space,
        in/out swapped (``kernels/_adjoint.py``), top/left padding ``2 - pt, 2 - pl``:
        :meth:`_winograd`."""
        self._winograd_kernels()
        with self._winograd_blas(g.n):
            if gx is not None:
                self._winograd(gy, self.xp.ascontiguousarray(_adjoint.flipped(w, 1)), gx,
                               2 - g.pt, 2 - g.pl)
            self._winograd_weight_grad(gy, x, g, gw)

    def _winograd_weight_grad(self, gy, x, g, gw):
        """``gw = G^T dU G``, ``dU[p]`` the sum over the tiles of ``V[p]^T (A gy A^T)[p]``."""
        xp, k = self.xp, self.k.winograd
        m, gm = self._winograd_tile(g.oh, g.ow, x.dtype)
        a = m + 2
        th, tw = -(-g.oh // m), -(-g.ow // m)
        if hasattr(k, "weight_grad"):   # transforms and GEMMs per block of tiles in cache
            du = xp.zeros((a * a, g.c, g.o), x.dtype)
            k.weight_grad(x, gy, du, 0, g.n * th * tw, m, g.pt, g.pl,
                          max(self._winograd_grad_tiles, self._summed_tiles(g.c, g.o)))
        else:
            def block(t0, v, dm, acc):
                du, part = acc
                k.input_transform(x, v, t0, m, th, tw, g.pt, g.pl)
                k.output_transform_t(gy, dm, t0, m)
                du += xp.matmul(v.swapaxes(1, 2), dm, out=part)
            du = sum(acc[0] for acc in self._winograd_blocks(
                g.n, th * tw, a * a, (g.c, g.o), x.dtype, block, (2, a * a, g.c, g.o)))
        # gw[i, j] = sum_ab G[a, i] G[b, j] dU[a, b]
        t = xp.matmul(gm.T, du.reshape(a, a, -1))
        gw[...] = (gm.T @ t.reshape(a, -1)).reshape(gw.shape)

    @staticmethod
    def _summed_tiles(c, o):
        """The least tiles per block of a weight gradient, ``2CO/(C+O)``: each block's products
        (points x C x O) are added to the sums, at most half the traffic of its transforms
        (blocks of 64 tiles re-added mnist4's 3.3 MiB every 64: bench/NOTES.md, step 26)."""
        return 2 * c * o // (c + o)

    def _winograd_blocks(self, n, per_image, points, widths, dtype, body, acc_shape=None):
        """Call ``body(t0, *bufs, acc)`` on blocks of tiles ``[t0, t0 + T)`` of ``n`` images of
        ``per_image`` tiles, ``bufs[i]`` a ``(points, T, widths[i])`` workspace; one worker per
        thread over whole images, as :meth:`_for_tiles` (the caller holds
        :meth:`_winograd_blas`). Returns the accumulators ``acc`` (zeros of ``acc_shape``), one
        per worker."""
        xp = self.xp
        per_tile = points * sum(widths) * dtype.itemsize
        least = max(self._winograd_min_tiles, self._summed_tiles(*widths) if acc_shape else 0)
        block = min(n * per_image, max(least, self._winograd_bytes // per_tile))

        def work(lo, hi):
            acc = xp.zeros(acc_shape, dtype) if acc_shape else None
            space = [xp.empty(points * block * wd, dtype) for wd in widths]
            for t0 in range(lo, hi, block):
                cnt = min(block, hi - t0)
                body(t0, *(s[:points * cnt * wd].reshape(points, cnt, wd)
                           for s, wd in zip(space, widths)), acc)
            return acc
        return self._per_worker(n, per_image, work)

    def _for_tiles(self, x, g, body, acc_shape=None):
        """Unroll every row tile into ``cols`` and call ``body(r0, cols, acc)``.

        Returns the accumulators ``acc`` (zeros of ``acc_shape``), one per worker thread.
        """
        xp = self.xp
        k = g.kh * g.kw * (g.c // g.groups)
        rows = max(1, min(g.n * g.oh, self.tile_bytes // (g.groups * g.ow * k * x.dtype.itemsize)))

        def work(lo, hi):
            acc = xp.zeros(acc_shape, x.dtype) if acc_shape else None
            space = xp.empty((g.groups, rows * g.ow, k), x.dtype)
            for r0 in range(lo, hi, rows):
                cols = space[:, :min(rows, hi - r0) * g.ow]
                self.k.im2col.im2col(x, cols, r0, g.kh, g.kw, g.oh, g.ow, *g.stride_args())
                body(r0, cols, acc)
            return acc
        return self._per_worker(g.n, g.oh, work)

    def _per_worker(self, n, per_image, work):
        """Run ``work(lo, hi)`` on one range of whole images per worker thread (``per_image``
        units each), with single-threaded kernels and BLAS: alternating multi-threaded OpenMP
        and BLAS regions made the cores wait on each other (bench/NOTES.md, step 3), and whole
        images keep gathers such as ``col2im`` race-free. Returns each worker's result."""
        workers = min(n, self._threads()) if self.set_num_threads else 1
        if workers == 1:
            return [work(0, n * per_image)]
        bounds = [n * i // workers * per_image for i in range(workers + 1)]

        def run(lo, hi):
            self.set_num_threads(1)
            return work(lo, hi)
        with _one_blas_thread():
            return list(_executor(workers).map(run, bounds[:-1], bounds[1:]))

    @staticmethod
    def _threads():
        from fastconv._config import get_num_threads
        return get_num_threads()

    def _subsample(self, x, g):
        if g.sh == g.sw == 1:
            return x
        return self.xp.ascontiguousarray(x[:, ::g.sh, ::g.sw][:, :g.oh, :g.ow])

    @staticmethod
    def _grouped(w, g):
        """A view of HWIO weights as ``(groups, kh*kw*cg, og)`` for the batched GEMM."""
        return w.reshape(-1, g.groups, g.o // g.groups).swapaxes(0, 1)

    @staticmethod
    def _rows(a, g):
        """A view of NHWC activations as ``(groups, n*h*w, channels/groups)``."""
        return a.reshape(-1, g.groups, a.shape[-1] // g.groups).swapaxes(0, 1)

    # ---------------------------------------------------------------- elementwise
    def bias_act(self, y, b, relu):
        """In place: ``y += b`` (skipped when None), then ReLU when ``relu``."""
        self.k.epilogue.bias_act(y, b, relu)

    def _tile_epilogue(self, y, b, relu):
        """:meth:`bias_act` on a tile inside a worker, while it is in cache, by array operations:
        the parallel kernel there (an OpenMP or Numba region inside each worker) made the 1x1
        forward 1.6x slower (bench/NOTES.md, step 12)."""
        if b is not None:
            self.xp.add(y, b, out=y)
        if relu:
            self.xp.maximum(y, 0, out=y)

    def matmul(self, a, b):
        """``a @ b``; on the CPU by rows of ``a``, one range per worker (:meth:`_per_worker`)."""
        if not self.set_num_threads or not a.shape[0]:
            return self.xp.matmul(a, b)
        out = self.xp.empty((a.shape[0], b.shape[1]), a.dtype)

        def work(lo, hi):
            self.xp.matmul(a[lo:hi], b, out=out[lo:hi])
        self._per_worker(a.shape[0], 1, work)
        return out

    def relu_backward(self, gy, y):
        gx = self._output(gy.shape, gy.dtype)
        self.k.epilogue.relu_backward(gy, y, gx)
        return gx

    def dropout(self, x, rate, seed, noise_shape):
        """``x`` times the mask of ``noise_shape`` drawn from ``seed`` (see functional.dropout)."""
        threshold, scale = round(rate * 2**32), x.dtype.type(1 / (1 - rate))
        if noise_shape == x.shape:
            out = self._output(x.shape, x.dtype)
            self.k.epilogue.dropout(x, out, seed, threshold, scale)
            return out
        mask = self.xp.empty(noise_shape, x.dtype)
        self.k.epilogue.dropout(self.xp.ones(noise_shape, x.dtype), mask, seed, threshold, scale)
        return x * mask

    # ---------------------------------------------------------------- pooling
    def pool2d(self, mode, x, g, indices=False):
        """The pooled ``y``, or ``(y, offsets)`` for max with ``indices`` (kernel sets that
        have ``pool.max_forward_indices``: the CPU ones)."""
        y = self._output(g.output_shape, x.dtype)
        if indices:
            idx = self.xp.empty(g.output_shape, self.xp.uint8)
            self.k.pool.max_forward_indices(x, y, idx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
            return y, idx
        fn = self.k.pool.max_forward if mode == "max" else self.k.pool.avg_forward
        fn(x, y, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        return y

    def pool2d_backward(self, mode, gy, x, g, indices=None):
        """The input gradient; for max with ``indices`` (offsets) x's values are not read."""
        gx = self._output(g.input_shape, gy.dtype)
        if indices is not None:
            self.k.pool.max_backward_indices(indices, gy, gx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        elif mode == "max":
            self.k.pool.max_backward(x, gy, gx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        else:
            self.k.pool.avg_backward(gy, gx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        return gx


def _one_blas_thread():
    """A context holding BLAS to one thread. Its threadpoolctl controller is made once:
    ``threadpool_limits`` rescans the loaded libraries on every call (1.5 ms with torch loaded,
    against 0.04 ms for ``limit``)."""
    if not _blas:
        from threadpoolctl import ThreadpoolController
        _blas.append(ThreadpoolController().select(user_api="blas"))
    return _blas[0].limit(limits=1)


def _executor(workers):
    """One thread pool per worker count, created on first use."""
    if workers not in _pool:
        _pool[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fastconv")
    return _pool[workers]
