"""Training time of the lecture's MNIST net until the test accuracy first reaches a target.

    python bench/time_to_accuracy.py --optimizer adam --lr 0.001 --batch-size 128 --no-augment

The test set is evaluated every ``--eval-every`` steps; evaluation time is not counted. Prints
one JSON line: the recipe, the seconds and epochs to the target, and the accuracy curve.
"""
import argparse
import json
import os
import time

import fastconv
from fastconv import optimizers, utils
from fastconv.applications import MNIST_RECIPE, mnist_net
from fastconv.preprocessing.image import ImageDataGenerator
from fastconv.training_run import load


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--optimizer", default="adadelta")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--max-epochs", type=float, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    fastconv.set_num_threads(args.threads)
    (x, y), (xt, yt), _ = load("mnist")
    utils.set_random_seed(args.seed)
    model = mnist_net()
    opt = optimizers.get(args.optimizer)
    if args.lr is not None:
        opt.learning_rate = args.lr
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["acc"])
    gen = ImageDataGenerator(**(MNIST_RECIPE.augmentation if args.augment else {}))
    flow = gen.flow(x, y, batch_size=args.batch_size, seed=args.seed)
    steps_per_epoch = len(x) / args.batch_size
    trained, steps, curve = 0.0, 0, []
    while steps < args.max_epochs * steps_per_epoch:
        start = time.perf_counter()
        model.fit(flow, steps_per_epoch=args.eval_every, epochs=1, verbose=0)
        trained += time.perf_counter() - start
        steps += args.eval_every
        acc = model.evaluate(xt, yt, batch_size=1000, verbose=0)[1]
        curve.append((round(steps / steps_per_epoch, 3), round(trained, 1), acc))
        if acc >= args.target:
            break
    reached = curve[-1][2] >= args.target
    print(json.dumps({"recipe": vars(args), "reached": reached,
                      "seconds": curve[-1][1] if reached else None,
                      "epochs": curve[-1][0] if reached else None, "curve": curve}))


if __name__ == "__main__":
    main()
