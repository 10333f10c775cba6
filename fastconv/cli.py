"""``fastconv`` command line. ``fastconv demo`` runs the lecture's worked examples on the
compiled kernels and prints them (the training commands arrive with the Keras-style layer)."""
import argparse

import numpy as np

import fastconv

CLASSIC_FILTERS = {
    "vertical edge": [[1, 0, -1]] * 3,
    "horizontal edge": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
}


def _show(title, a):
    print(f"\n{title}:")
    print(np.array2string(np.asarray(a), precision=2, suppress_small=True))


def demo(backend):
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6, np.float32)
    _show("the lecture's 6x6 image", image)
    for name, k in CLASSIC_FILTERS.items():
        y = fastconv.conv2d(image[None, :, :, None], np.array(k, np.float32)[:, :, None, None],
                            backend=backend)
        _show(f"{name} filter (valid, 3x3)", y[0, :, :, 0])
    pool_in = np.array([[3, 5, 3, 2, 3], [4, 5, 4, 1, 6], [1, 7, 6, 3, 2], [1, 2, 4, 7, 8],
                        [9, 3, 5, 6, 3]], np.float32)
    _show("3x3 max-pooling, stride 1, of the lecture's 5x5 map",
          fastconv.max_pool2d(pool_in[None, :, :, None], 3, 1, backend=backend)[0, :, :, 0])
    print(f"\nbackend: {backend}; installed: {fastconv.available_backends()}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the lecture's worked examples on fastconv's kernels")
    p.add_argument("--backend", default=None, help="cython (default), numba, reference")
    args = parser.parse_args(argv)
    demo(args.backend or fastconv.get_backend())


if __name__ == "__main__":
    main()
