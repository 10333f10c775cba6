"""Time one epoch of the lecture's ImageDataGenerator augmentation (MNIST and CIFAR-10 shapes).

    python bench/augmentation.py [--batch-size 512] [--repeats 3]

Random float32 images stand in for the data sets (the work does not depend on the pixels).
Prints the best of ``repeats`` epochs: seconds per epoch and images/s.
"""
import argparse
import time

import numpy as np

from fastconv.applications import CIFAR10_RECIPE, MNIST_RECIPE
from fastconv.preprocessing.image import ImageDataGenerator

CASES = {
    "MNIST": ((60000, 28, 28, 1), MNIST_RECIPE.augmentation),
    "CIFAR-10": ((50000, 32, 32, 3), CIFAR10_RECIPE.augmentation),
}


def epoch_seconds(shape, settings, batch_size, repeats):
    """Best time over ``repeats`` of one pass (len(flow) batches) through ``shape`` images."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    y = np.arange(shape[0])
    datagen = ImageDataGenerator(**settings)
    datagen.fit(x)
    batches = datagen.flow(x, y, batch_size=batch_size, seed=0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(len(batches)):
            next(batches)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, (shape, settings) in CASES.items():
        seconds = epoch_seconds(shape, settings, args.batch_size, args.repeats)
        print(f"{name:9s} {shape[0]} images {shape[1:]} batch {args.batch_size}: "
              f"{seconds:.2f} s/epoch, {shape[0] / seconds:,.0f} images/s")


if __name__ == "__main__":
    main()
