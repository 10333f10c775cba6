"""The lecture's worked examples, reproduced exactly, on every backend."""
import functools

import numpy as np
import pytest

import fastconv
from conftest import to_numpy

VERTICAL_EDGE = np.array([[1, 0, -1]] * 3, np.float64)


def _single(img, kernel, xp, backend, **kw):
    """Correlate one 2-D image with one 2-D filter through the batched NHWC API."""
    y = fastconv.conv2d(xp.asarray(img[None, :, :, None].astype(np.float32)),
                        xp.asarray(kernel[:, :, None, None].astype(np.float32)),
                        backend=backend, **kw)
    return to_numpy(y)[0, :, :, 0]


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_vertical_edge_detection(backend, xp, algorithm):
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6, np.float64)
    expected = np.array([[0, 30, 30, 0]] * 4, np.float64)
    np.testing.assert_array_equal(_single(image, VERTICAL_EDGE, xp, backend, algorithm=algorithm),
                                  expected)
    np.testing.assert_array_equal(
        _single(image[:, ::-1], VERTICAL_EDGE, xp, backend, algorithm=algorithm), -expected)


def test_output_size_formula():
    assert fastconv.conv_output_size(7, 3, s=2, p=1) == 4
    assert fastconv.conv_output_shape((7, 7, 1), 3, strides=2, padding=1) == (4, 4, 1)
    assert fastconv.conv_output_shape((1, 6, 6, 3), 3, filters=2) == (1, 4, 4, 2)
    assert fastconv.conv_output_shape((1, 3, 6, 6), 3, filters=2,
                                      data_format="channels_first") == (1, 2, 4, 4)


def test_the_25x25x3_network(backend, xp):
    x = xp.zeros((1, 25, 25, 3), np.float32)
    h = fastconv.conv2d(x, xp.zeros((5, 5, 3, 16), np.float32), strides=2, backend=backend)
    assert h.shape == (1, 11, 11, 16)
    h = fastconv.conv2d(h, xp.zeros((3, 3, 16, 32), np.float32), strides=2, padding=1,
                        backend=backend)
    assert h.shape == (1, 6, 6, 32) and h[0].size == 1152


def test_max_pool_slide(backend, xp):
    x = np.array([[3, 5, 3, 2, 3], [4, 5, 4, 1, 6], [1, 7, 6, 3, 2], [1, 2, 4, 7, 8],
                  [9, 3, 5, 6, 3]], np.float32)
    y = fastconv.max_pool2d(xp.asarray(x[None, :, :, None]), pool_size=3, strides=1,
                            backend=backend)
    np.testing.assert_array_equal(to_numpy(y)[0, :, :, 0], [[7, 7, 6], [7, 7, 8], [9, 7, 8]])


def test_2x2_pooling_by_hand(backend, xp):
    x = np.array([[1, 3, 2, 1], [4, 6, 5, 0], [7, 2, 9, 8], [1, 0, 3, 4]], np.float32)
    x4 = xp.asarray(x[None, :, :, None])
    np.testing.assert_array_equal(
        to_numpy(fastconv.max_pool2d(x4, backend=backend))[0, :, :, 0], [[6, 5], [7, 9]])
    np.testing.assert_array_equal(
        to_numpy(fastconv.avg_pool2d(x4, backend=backend))[0, :, :, 0], [[3.5, 2], [2.5, 6]])
    dx = to_numpy(fastconv.max_pool2d_backward(xp.ones((1, 2, 2, 1), np.float32), x4,
                                               backend=backend))[0, :, :, 0]
    np.testing.assert_array_equal(dx, [[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


CLASSIC_FILTERS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box_blur": np.ones((3, 3)) / 9,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "edge_8": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "vertical": VERTICAL_EDGE,
    "horizontal": VERTICAL_EDGE.T,
}


@functools.lru_cache(maxsize=1)
def _mnist_test_images():
    from fastconv.datasets import mnist
    return mnist.load_data()[1][0]      # the copy shipped in the package, or FASTCONV_DATA's


def _mnist_test_image(index):
    return _mnist_test_images()[index].astype(np.float64)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("name", sorted(CLASSIC_FILTERS))
def test_classic_filters_on_a_real_image_match_scipy(backend, xp, name, padding):
    from scipy.signal import correlate2d
    image = _mnist_test_image(0) / 255
    kernel = np.asarray(CLASSIC_FILTERS[name], np.float64)
    got = _single(image, kernel, xp, backend, padding=padding)
    expected = correlate2d(image, kernel, mode="valid" if padding == "valid" else "same")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
