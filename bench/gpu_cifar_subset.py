"""The lecture's CIFAR-10 recipe on a subset, for a GPU machine that cannot hold the dataset.

    python bench/gpu_cifar_subset.py SUBSET.npz --epochs 50 --backend cupy --out DIR

SUBSET.npz holds uint8 ``x_train, y_train, x_test, y_test`` cut from the real files (the first
N training and M test images; see ``--make``). Trains ``cifar10_net`` with the notebook's
optimizer, batch, augmentation and learning-rate schedule, validating each epoch, and writes
``DIR/cifar10-subset.json`` (history, test accuracy, seconds per epoch).
"""
import argparse
import json
import os
import time

import numpy as np

import fastconv
from fastconv.applications import CIFAR10_RECIPE as R
from fastconv.preprocessing.image import ImageDataGenerator


def make(path, train, test):
    (x, y), (xt, yt) = fastconv.datasets.cifar10.load_data()
    np.savez(path, x_train=x[:train], y_train=y[:train], x_test=xt[:test], y_test=yt[:test])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("subset")
    p.add_argument("--make", nargs=2, type=int, metavar=("TRAIN", "TEST"),
                   help="write SUBSET from the real files (FASTCONV_DATA) and stop")
    p.add_argument("--epochs", type=int, default=R.epochs)
    p.add_argument("--backend", default="cupy")
    p.add_argument("--out", default=".")
    a = p.parse_args()
    if a.make:
        return make(a.subset, *a.make)
    d = np.load(a.subset)
    x, xt = (d[k].astype(np.float32) / 255 for k in ("x_train", "x_test"))
    y, yt = (fastconv.utils.to_categorical(d[k], 10) for k in ("y_train", "y_test"))
    fastconv.utils.set_random_seed(0)
    fastconv.set_backend(a.backend)
    model = R.build(input_shape=x.shape[1:])
    model.compile(loss="categorical_crossentropy", optimizer=R.optimizer(), metrics=["acc"])
    gen = ImageDataGenerator(**R.augmentation)
    gen.fit(x)
    start = time.perf_counter()
    history = model.fit(gen.flow(x, y, batch_size=R.batch_size, seed=0), epochs=a.epochs,
                        steps_per_epoch=len(x) // R.batch_size, validation_data=(xt, yt),
                        callbacks=R.callbacks(), verbose=2)
    seconds = time.perf_counter() - start
    result = {"train_images": len(x), "test_images": len(xt), "epochs": a.epochs,
              "backend": a.backend, "test_accuracy": history.history["val_acc"][-1],
              "seconds_per_epoch": round(seconds / a.epochs, 2), "history": history.history}
    with open(os.path.join(a.out, "cifar10-subset.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"test accuracy {result['test_accuracy']:.4f} on {len(xt)} images after {a.epochs} "
          f"epochs on {len(x)}; {result['seconds_per_epoch']} s/epoch")


if __name__ == "__main__":
    main()
