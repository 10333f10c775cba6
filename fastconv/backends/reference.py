"""The oracle: every op in plain NumPy float64, written for obviousness, not speed.

Convolution is a sum over the filter's taps of (strided input slice) x (that tap's weights);
pooling walks the output windows one by one. Results come back in the input's dtype.
"""
import numpy as np

from fastconv._random import dropout_keep


def _taps(g):
    """Yield ``(i, j, rows, cols)``: each filter tap and the input slices it sees (padded input)."""
    for i in range(g.kh):
        for j in range(g.kw):
            rows = slice(i * g.dil_h, i * g.dil_h + (g.oh - 1) * g.sh + 1, g.sh)
            cols = slice(j * g.dil_w, j * g.dil_w + (g.ow - 1) * g.sw + 1, g.sw)
            yield i, j, rows, cols


def _pad(x, g):
    return np.pad(x.astype(np.float64), ((0, 0), (g.pt, g.pb), (g.pl, g.pr), (0, 0)))


def _split(a, groups):
    """``(..., C)`` → ``(..., groups, C/groups)``."""
    return a.reshape(a.shape[:-1] + (groups, a.shape[-1] // groups))


class ReferenceBackend:
    name = "reference"

    def conv2d(self, x, w, g, algorithm=None, b=None, relu=False):
        xp = _pad(x, g)
        wg = _split(w.astype(np.float64), g.groups)  # (kh, kw, cg, G, og)
        y = np.zeros((g.n, g.oh, g.ow, g.groups, g.o // g.groups))
        for i, j, rows, cols in _taps(g):
            y += np.einsum("nhwgc,cgo->nhwgo", _split(xp[:, rows, cols], g.groups), wg[i, j])
        y = y.reshape(g.output_shape).astype(x.dtype)
        self.bias_act(y, b, relu)
        return y

    def conv2d_backward(self, gy, x, w, g, algorithm=None, need_input_grad=True):
        xp = _pad(x, g)
        wg = _split(w.astype(np.float64), g.groups)
        dy = _split(gy.astype(np.float64), g.groups)
        gxp = np.zeros_like(xp)
        gw = np.zeros_like(wg)
        for i, j, rows, cols in _taps(g):
            gw[i, j] = np.einsum("nhwgc,nhwgo->cgo", _split(xp[:, rows, cols], g.groups), dy)
            gxp[:, rows, cols] += np.einsum("nhwgo,cgo->nhwgc", dy, wg[i, j]).reshape(
                g.n, g.oh, g.ow, g.c)
        gx = gxp[:, g.pt:g.pt + g.h, g.pl:g.pl + g.w].astype(x.dtype)
        gb = dy.sum(axis=(0, 1, 2)).reshape(-1).astype(x.dtype)
        return (gx if need_input_grad else None), gw.reshape(w.shape).astype(x.dtype), gb

    @staticmethod
    def _windows(g):
        """Yield ``(oh, ow, cells)``: each output window and its real (unpadded) input cells."""
        for oh in range(g.oh):
            for ow in range(g.ow):
                cells = [(ih, iw)
                         for ih in range(oh * g.sh - g.pt, oh * g.sh - g.pt + g.kh)
                         for iw in range(ow * g.sw - g.pl, ow * g.sw - g.pl + g.kw)
                         if 0 <= ih < g.h and 0 <= iw < g.w]
                yield oh, ow, cells

    def pool2d(self, mode, x, g):
        x64 = x.astype(np.float64)
        y = np.empty(g.output_shape)
        for oh, ow, cells in self._windows(g):
            window = np.stack([x64[:, ih, iw] for ih, iw in cells])  # (cells, N, C)
            if mode == "max":  # argmax picks the first NaN, else the first maximum
                y[:, oh, ow] = np.take_along_axis(window, window.argmax(0)[None], 0)[0]
            else:
                y[:, oh, ow] = window.mean(0)
        return y.astype(x.dtype)

    def pool2d_backward(self, mode, gy, x, g):
        x64 = x.astype(np.float64)
        gx = np.zeros(g.input_shape)
        n, c = np.ogrid[:g.n, :g.c]
        for oh, ow, cells in self._windows(g):
            if mode == "max":
                win = np.stack([x64[:, ih, iw] for ih, iw in cells]).argmax(0)  # (N, C)
                ih, iw = np.array(cells).T
                gx[n, ih[win], iw[win], c] += gy[:, oh, ow]
            else:
                for ih, iw in cells:
                    gx[:, ih, iw] += gy[:, oh, ow] / len(cells)
        return gx.astype(x.dtype)

    @staticmethod
    def bias_act(y, b, relu):
        if b is not None:
            y += b
        if relu:
            np.maximum(y, 0, out=y)

    @staticmethod
    def matmul(a, b):
        return a @ b

    @staticmethod
    def relu_backward(gy, y):
        return gy * (y > 0)

    @staticmethod
    def dropout(x, rate, seed, noise_shape):
        return x * (dropout_keep(noise_shape, rate, seed) * x.dtype.type(1 / (1 - rate)))


BACKEND = ReferenceBackend()
