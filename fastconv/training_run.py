"""``fastconv train``: one of the lecture's notebooks as a command, with a report folder.

The run trains with the notebook's recipe (:mod:`fastconv.applications.lecture`), validates
on the test set each epoch as the notebook does, and writes into ``out``: ``metrics.json``,
``model.npz``, ``log.csv``, the curves, the confusion matrix, the classification report and
the misclassified images. ``checkpoint.npz`` is written atomically after every epoch, so an
interrupted run (Ctrl-C, kill) continues with ``--resume`` from its last finished epoch.
"""
import json
import os
import time


import fastconv
from fastconv import reports, utils
from fastconv.applications import CIFAR10_RECIPE, MNIST_RECIPE
from fastconv.callbacks import BackupAndRestore, Callback, CSVLogger

RECIPES = {"mnist": MNIST_RECIPE, "cifar10": CIFAR10_RECIPE}


class EpochTimer(Callback):
    """Wall-clock seconds of each epoch of this run."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def load(dataset, path=None, limit=None, test_limit=None):
    """The dataset as the notebook prepares it: float32 in [0, 1], one-hot labels (the first
    ``limit`` training and ``test_limit`` test images if given)."""
    from fastconv.datasets import cifar10, mnist
    module = {"mnist": mnist, "cifar10": cifar10}[dataset]
    (x_train, y_train), (x_test, y_test) = module.load_data(path)
    x_train, y_train = x_train[:limit], y_train[:limit]
    x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    prep = [x.astype("float32") / 255 for x in (x_train, x_test)]
    labels = [utils.to_categorical(y, 10) for y in (y_train, y_test)]
    return (prep[0], labels[0]), (prep[1], labels[1]), module.CLASS_NAMES


def train(dataset, epochs=None, batch_size=None, augment=True, limit=None, out=None,
          resume=False, seed=0, data=None, verbose=1, test_limit=None):
    """Train ``dataset``'s lecture net; returns the metrics dict also written to
    ``out/metrics.json``."""
    recipe = RECIPES[dataset]
    epochs, batch_size = epochs or recipe.epochs, batch_size or recipe.batch_size
    out = out or os.path.join("runs", dataset)
    os.makedirs(out, exist_ok=True)
    backup = BackupAndRestore(out, delete_checkpoint=False)
    if os.path.exists(backup.path) and not resume:
        os.remove(backup.path)
    utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test), names = load(dataset, data, limit, test_limit)
    model = recipe.build(input_shape=x_train.shape[1:])
    model.compile(loss="categorical_crossentropy", optimizer=recipe.optimizer(), metrics=["acc"])
    if verbose:
        model.summary()
    timer = EpochTimer()
    callbacks = recipe.callbacks() + [timer, CSVLogger(os.path.join(out, "log.csv"),
                                                       append=resume), backup]
    start = time.perf_counter()
    if augment:
        from fastconv.preprocessing.image import ImageDataGenerator
        datagen = ImageDataGenerator(**recipe.augmentation)
        datagen.fit(x_train)
        history = model.fit(datagen.flow(x_train, y_train, batch_size=batch_size, seed=seed),
                            epochs=epochs, steps_per_epoch=max(1, len(x_train) // batch_size),
                            validation_data=(x_test, y_test), verbose=verbose,
                            callbacks=callbacks)
    else:
        history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                            validation_data=(x_test, y_test), verbose=verbose,
                            callbacks=callbacks)
    train_seconds = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=batch_size, verbose=0)
    y_pred = model.predict(x_test, batch_size=batch_size)
    model.save(os.path.join(out, "model.npz"))
    summary = reports.write_report(out, y_test, y_pred, images=x_test, labels=names,
                                   history=history)
    metrics = {
        "dataset": dataset, "epochs": epochs, "batch_size": batch_size, "augment": augment,
        "train_samples": len(x_train), "test_samples": len(x_test), "seed": seed,
        "backend": fastconv.get_backend(), "threads": fastconv.get_num_threads(),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_acc), "misclassified": summary["num_misclassified"],
        "epoch_seconds_this_run": [round(s, 2) for s in timer.seconds],
        "train_seconds_this_run": round(train_seconds, 2),
        "history": history.history,
    }
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics
