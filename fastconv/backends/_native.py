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
                 subsampled for strides > 1): pure GEMM, no unrolling.
  ``depthwise``  groups == channels, any depth multiplier.
"""
from concurrent.futures import ThreadPoolExecutor

TILE_BYTES = 4 << 20   # the CPU backends' im2col tile
_pool = {}


class NativeBackend:
    def __init__(self, name, kernels, xp, set_num_threads=None, tile_bytes=TILE_BYTES):
        """``set_num_threads``: sets the calling thread's kernel threads (CPU backends only)."""
        self.name, self.tile_bytes = name, tile_bytes
        self.k = kernels
        self.xp = xp
        self.set_num_threads = set_num_threads

    # ---------------------------------------------------------------- convolution
    def conv2d(self, x, w, g, algorithm):
        xp = self.xp
        y = xp.empty(g.output_shape, x.dtype)
        if algorithm == "direct":
            self.k.conv_direct.forward(x, w, y, *g.stride_args(), g.groups)
        elif algorithm == "depthwise":
            self.k.depthwise.forward(x, w, y, *g.stride_args())
        elif algorithm == "1x1":
            xp.matmul(self._rows(self._subsample(x, g), g), self._grouped(w, g),
                      out=self._rows(y, g))
        else:
            wg, y_rows = self._grouped(w, g), self._rows(y, g)

            def tile(r0, cols, _):
                xp.matmul(cols, wg, out=y_rows[:, r0 * g.ow:r0 * g.ow + cols.shape[1]])
            self._for_tiles(x, g, tile)
        return y

    def conv2d_backward(self, gy, x, w, g, algorithm, need_input_grad=True):
        """Gradients ``(gx, gw)`` of the convolution; ``gx`` is None unless ``need_input_grad``."""
        xp = self.xp
        gx = xp.empty(g.input_shape, x.dtype) if need_input_grad else None
        gw = xp.empty(w.shape, x.dtype)
        if algorithm == "direct":
            if need_input_grad:
                self.k.conv_direct.backward_input(gy, w, gx, *g.stride_args(), g.groups)
            self.k.conv_direct.backward_weight(gy, x, gw, *g.stride_args(), g.groups)
        elif algorithm == "depthwise":
            if need_input_grad:
                self.k.depthwise.backward_input(gy, w, gx, *g.stride_args())
            self.k.depthwise.backward_weight(gy, x, gw, *g.stride_args())
        elif algorithm == "1x1":
            self._backward_1x1(gy, x, w, g, gx, gw)
        else:
            self._backward_im2col(gy, x, w, g, gx, gw)
        return gx, gw

    def _backward_1x1(self, gy, x, w, g, gx, gw):
        xp = self.xp
        cols, dy = self._rows(self._subsample(x, g), g), self._rows(gy, g)
        xp.matmul(cols.swapaxes(1, 2), dy, out=self._grouped(gw, g))
        if gx is None:
            return
        sub = gx if g.sh == g.sw == 1 else xp.empty((g.n, g.oh, g.ow, g.c), gx.dtype)
        xp.matmul(dy, self._grouped(w, g).swapaxes(1, 2), out=self._rows(sub, g))
        if sub is not gx:
            gx[...] = 0
            gx[:, ::g.sh, ::g.sw][:, :g.oh, :g.ow] = sub

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

    def _for_tiles(self, x, g, body, acc_shape=None):
        """Unroll every row tile into ``cols`` and call ``body(r0, cols, acc)``.

        Returns the accumulators ``acc`` (zeros of ``acc_shape``), one per worker thread.
        """
        xp = self.xp
        k = g.kh * g.kw * (g.c // g.groups)
        rows = max(1, min(g.n * g.oh, self.tile_bytes // (g.groups * g.ow * k * x.dtype.itemsize)))
        workers = min(g.n, self._threads()) if self.set_num_threads else 1
        bounds = [g.n * i // workers * g.oh for i in range(workers + 1)]

        def work(lo, hi):
            if workers > 1:
                self.set_num_threads(1)
            acc = xp.zeros(acc_shape, x.dtype) if acc_shape else None
            space = xp.empty((g.groups, rows * g.ow, k), x.dtype)
            for r0 in range(lo, hi, rows):
                cols = space[:, :min(rows, hi - r0) * g.ow]
                self.k.im2col.im2col(x, cols, r0, g.kh, g.kw, g.oh, g.ow, *g.stride_args())
                body(r0, cols, acc)
            return acc

        if workers == 1:
            return [work(0, g.n * g.oh)]
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1, user_api="blas"):
            return list(_executor(workers).map(work, bounds[:-1], bounds[1:]))

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

    # ---------------------------------------------------------------- pooling
    def pool2d(self, mode, x, g):
        y = self.xp.empty(g.output_shape, x.dtype)
        fn = self.k.pool.max_forward if mode == "max" else self.k.pool.avg_forward
        fn(x, y, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        return y

    def pool2d_backward(self, mode, gy, x, g):
        gx = self.xp.empty(g.input_shape, x.dtype)
        if mode == "max":
            self.k.pool.max_backward(x, gy, gx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        else:
            self.k.pool.avg_backward(gy, gx, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl)
        return gx


def _executor(workers):
    """One thread pool per worker count, created on first use."""
    if workers not in _pool:
        _pool[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fastconv")
    return _pool[workers]
