"""``fastconv`` command line.

- ``fastconv train mnist|cifar10``: train the lecture's net with its recipe and write a report
  folder (see :mod:`fastconv.training_run`); Ctrl-C, then ``--resume``, continues.
- ``fastconv demo``: the lecture's worked examples computed by the compiled kernels.
"""
import argparse
import os
import sys

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


def train(args):
    from fastconv.training_run import train as run
    if args.backend:
        fastconv.set_backend(args.backend)
    if args.threads:
        fastconv.set_num_threads(args.threads)
    out = args.out or os.path.join("runs", args.dataset)
    try:
        m = run(args.dataset, args.epochs, args.batch_size, args.augment, args.limit, out,
                args.resume, args.seed, args.data, args.verbose, args.test_limit)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished epochs are saved; continue with\n  fastconv train "
              f"{args.dataset} --out {out} --resume", file=sys.stderr)
        return 130
    print(f"\ntest accuracy: {m['test_accuracy']:.4f}  (test loss {m['test_loss']:.4f}, "
          f"{m['misclassified']} misclassified)")
    print(f"report: {os.path.abspath(out)}/ (metrics.json, curves.png, confusion_matrix.png, "
          f"classification_report.txt, misclassified.png, model.npz)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the lecture's worked examples on fastconv's kernels")
    p.add_argument("--backend", default=None, help="cython (default), numba, reference")
    t = sub.add_parser("train", help="train the lecture's MNIST or CIFAR-10 net")
    t.add_argument("dataset", choices=("mnist", "cifar10"))
    t.add_argument("--epochs", type=int, help="default: the notebook's (MNIST 3, CIFAR-10 50)")
    t.add_argument("--batch-size", type=int, help="default: the notebook's 512")
    t.add_argument("--backend", help="cython (default), numba, cupy")
    t.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="the notebook's ImageDataGenerator (default on)")
    t.add_argument("--limit", type=int, help="train on the first N training images only")
    t.add_argument("--test-limit", type=int, help="test on the first N test images only")
    t.add_argument("--out", help="report folder (default runs/DATASET)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", help="folder with the dataset files (else FASTCONV_DATA, the "
                                  "packaged MNIST, the cache, a download)")
    t.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="1: progress bars (default), 2: a line per epoch, 0: quiet")
    args = parser.parse_args(argv)
    if args.command == "train":
        return train(args)
    demo(args.backend or fastconv.get_backend())
    return 0


if __name__ == "__main__":
    sys.exit(main())
