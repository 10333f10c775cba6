"""The lecture's MNIST recipe end to end, fastconv beside PyTorch on the same machine:
same net, Adadelta (Keras 2.3 defaults), batch 512, 3 epochs of 117 steps, the notebook's
augmentation from the same ImageDataGenerator, validation on the test set after each epoch.

    python bench/recipe.py --seeds 0 1 2 > bench/results/mnist-recipe.md

Prints a markdown table (seconds per epoch, test accuracy per seed) and writes
bench/results/mnist-recipe.json. The two libraries alternate, seed by seed, so that machine
noise falls on both.
"""
import argparse
import json
import os
import time

import numpy as np
import torch

import fastconv
from fastconv import utils
from fastconv.applications import MNIST_RECIPE
from fastconv.preprocessing.image import ImageDataGenerator
from fastconv.training_run import load
from torch_peer import adadelta, train_step, translate


def _batches(x, y, seed):
    flow = ImageDataGenerator(**MNIST_RECIPE.augmentation).flow(
        x, y, batch_size=MNIST_RECIPE.batch_size, seed=seed)
    return flow, len(x) // MNIST_RECIPE.batch_size


def run_fastconv(data, seed, epochs):
    (x, y), (xt, yt), _ = data
    utils.set_random_seed(seed)
    model = MNIST_RECIPE.build()
    model.compile(loss="categorical_crossentropy", optimizer=MNIST_RECIPE.optimizer(),
                  metrics=["acc"])
    flow, steps = _batches(x, y, seed)
    seconds, accs = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.fit(flow, steps_per_epoch=steps, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        seconds.append(time.perf_counter() - start)
        accs.append(model.evaluate(xt, yt, batch_size=512, verbose=0)[1])
    return seconds, accs


def run_torch(data, seed, epochs):
    (x, y), (xt, yt), _ = data
    utils.set_random_seed(seed)
    torch.manual_seed(seed)
    net = translate(MNIST_RECIPE.build())
    step = train_step(net, adadelta(net))
    flow, steps = _batches(x, y, seed)
    xt_t = torch.from_numpy(xt.transpose(0, 3, 1, 2).copy())
    seconds, accs = [], []
    for _ in range(epochs):
        net.train()
        start = time.perf_counter()
        for _ in range(steps):
            xb, yb = next(flow)
            step(torch.from_numpy(xb.transpose(0, 3, 1, 2).copy()),
                 torch.from_numpy(yb.argmax(1)))
        seconds.append(time.perf_counter() - start)
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xt_t[i:i + 512]) for i in range(0, len(xt_t), 512)])
        accs.append(float((pred.argmax(1).numpy() == yt.argmax(1)).mean()))
    return seconds, accs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=MNIST_RECIPE.epochs)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    data = load("mnist")
    runs = []
    for seed in args.seeds:
        for name, fn in (("fastconv", run_fastconv), ("pytorch", run_torch)):
            seconds, accs = fn(data, seed, args.epochs)
            runs.append({"library": name, "seed": seed, "epoch_seconds": seconds,
                         "test_accuracy_per_epoch": accs})
    out = os.path.join(os.path.dirname(__file__), "results", "mnist-recipe.json")
    with open(out, "w") as f:
        json.dump({"threads": args.threads, "backend": fastconv.get_backend(), "runs": runs},
                  f, indent=2)
    print(f"# The lecture's MNIST recipe, {args.epochs} epochs, {args.threads} threads\n")
    print("Training seconds per epoch (augmentation included, validation excluded) and test "
          "accuracy after the last epoch.\n")
    print("| seed | fastconv s/epoch | PyTorch s/epoch | ratio (PyTorch / fastconv) | "
          "fastconv test acc | PyTorch test acc |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        f, t = (next(r for r in runs if r["seed"] == seed and r["library"] == lib)
                for lib in ("fastconv", "pytorch"))
        fs, ts = np.median(f["epoch_seconds"]), np.median(t["epoch_seconds"])
        print(f"| {seed} | {fs:.1f} | {ts:.1f} | {ts / fs:.2f} | "
              f"{f['test_accuracy_per_epoch'][-1]:.4f} | {t['test_accuracy_per_epoch'][-1]:.4f} |")


if __name__ == "__main__":
    main()
