"""Callbacks with Keras' names and arguments: History, ReduceLROnPlateau, EarlyStopping,
ModelCheckpoint, BackupAndRestore (resume an interrupted run), TerminateOnNaN, CSVLogger."""
import csv
import math
import os

import numpy as np


class Callback:
    """Hooks called by ``fit``; ``self.model`` is set before training starts."""

    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass


class CallbackList:
    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            c.set_model(model)
            c.set_params(params)

    def __getattr__(self, hook):
        def call(*args):
            for c in self.callbacks:
                getattr(c, hook)(*args)
        return call


class History(Callback):
    """Records every epoch's logs: ``history.history['val_acc']`` is a list, one per epoch."""

    def __init__(self):
        super().__init__()
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class _Monitor(Callback):
    """Watches one logged quantity; mode 'auto' means max for accuracies, else min."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = -math.inf if mode == "max" else math.inf

    def _value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"{type(self).__name__} monitors {self.monitor!r}, which is not "
                           f"logged; logged: {sorted(logs or {})}")
        return value

    def _improved(self, value):
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement
    (not below ``min_lr``; then wait ``cooldown`` epochs)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau needs factor < 1, got {factor}")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        old = self.model.optimizer.learning_rate
        if self.wait >= self.patience and old > self.min_lr:
            new = max(old * self.factor, self.min_lr)
            self.model.optimizer.learning_rate = new
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:g}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class EarlyStopping(_Monitor):
    """Stop when the monitored quantity has not improved for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights = restore_best_weights
        self.wait, self.stopped_epoch, self.best_weights = 0, 0, None

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch = 0, 0
        self.best = self.baseline if self.baseline is not None else (
            -math.inf if self.mode == "max" else math.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: early stopping")


class ModelCheckpoint(_Monitor):
    """Save the model (or its weights) after each epoch; ``filepath`` may hold fields such as
    ``'{epoch:02d}-{val_acc:.4f}.npz'``; ``save_best_only`` keeps only improvements."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch"):
        super().__init__(monitor, mode, 0)
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint saves once per epoch (save_freq='epoch')")
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: saved to {path}")


class BackupAndRestore(Callback):
    """Save everything needed to resume at the end of every epoch (weights, optimizer slots,
    random generators, history) atomically into ``backup_dir``; a later ``fit`` with the same
    callback resumes after the last finished epoch. The backup is deleted when training
    finishes unless ``delete_checkpoint=False``."""

    FILE = "checkpoint.npz"

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__()
        self.backup_dir, self.delete_checkpoint = os.fspath(backup_dir), delete_checkpoint

    @property
    def path(self):
        return os.path.join(self.backup_dir, self.FILE)

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            from fastconv.models.saving import load_checkpoint
            epoch, history = load_checkpoint(self.model, self.path)
            self.model._initial_epoch = epoch
            self.model.history.history = history
            self.model.history.epoch = list(range(epoch))

    def on_epoch_end(self, epoch, logs=None):
        from fastconv.models.saving import save_checkpoint
        os.makedirs(self.backup_dir, exist_ok=True)
        save_checkpoint(self.model, self.path, epoch + 1, self.model.history.history)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.path) and not getattr(
                self.model, "_interrupted", False):
            os.remove(self.path)


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        if not np.isfinite((logs or {}).get("loss", 0.0)):
            print(f"\nBatch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Append each epoch's logs as a CSV row."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        new = not os.path.exists(self.filename)
        with open(self.filename, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator)
            if new:
                writer.writerow(["epoch"] + sorted(logs))
            writer.writerow([epoch] + [logs[k] for k in sorted(logs)])
