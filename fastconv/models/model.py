"""``Model``: a graph of layers with Keras' compile / fit / evaluate / predict.

The graph runs forward in topological order and backward in reverse, each node's context
kept only until its gradient is done. Behind a softmax output, cross-entropy's gradient is
taken with respect to the logits, ``(p - y) / N``, exactly and stably.
"""
import sys
import time

import numpy as np

from fastconv import _random, backend, losses, metrics as metrics_module, optimizers
from fastconv.callbacks import CallbackList, History
from fastconv._arrays import array_module, to_numpy
from fastconv.layers.base import ActivationMixin, SymbolicTensor, _snake
from fastconv.models.feeds import ArrayFeed, IteratorFeed, as_inputs, cast_batch, is_iterator


def _single(tensors, what):
    items = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if len(items) != 1 or not isinstance(items[0], SymbolicTensor):
        raise NotImplementedError(f"fastconv models take exactly one {what} tensor, got "
                                  f"{len(items)}")
    return items[0]


def _topological(output):
    order, seen = [], set()

    def visit(t):
        if id(t) in seen:
            return
        seen.add(id(t))
        for i in t.inputs:
            visit(i)
        order.append(t)
    visit(output)
    return order


class Model:
    """``Model(inputs, outputs)`` over symbolic tensors from :func:`fastconv.layers.Input`."""

    def __init__(self, inputs=None, outputs=None, name=None):
        self.name = name or backend.unique_name(_snake(type(self).__name__))
        self.optimizer = self.loss = None
        self.compiled_metrics, self.stop_training, self.history = [], False, None
        self._fused_softmax = False
        self._shuffle_rng = None
        if inputs is not None or outputs is not None:
            self._set_graph(_single(inputs, "input"), _single(outputs, "output"))

    # ----------------------------------------------------------------- graph
    def _set_graph(self, inp, out):
        nodes = _topological(out)
        if nodes[0] is not inp or any(not t.inputs and t is not inp for t in nodes):
            raise ValueError("the outputs do not depend on the given input alone")
        self.input, self.output, self._nodes = inp, out, nodes
        names = [layer.name for layer in self.layers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"layer names must be unique in a model, repeated: {sorted(dupes)}")

    @property
    def built(self):
        return getattr(self, "_nodes", None) is not None

    @property
    def layers(self):
        seen, out = set(), []
        for t in self._nodes:
            if id(t.layer) not in seen:
                seen.add(id(t.layer))
                out.append(t.layer)
        return out

    @property
    def input_shape(self):
        return (None,) + self.input.shape

    @property
    def output_shape(self):
        return (None,) + self.output.shape

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_weights(self):
        return [w.numpy().copy() for w in self.weights]

    def set_weights(self, arrays):
        weights = self.weights
        if len(arrays) != len(weights):
            raise ValueError(f"the model has {len(weights)} weights, got {len(arrays)} arrays")
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(arrays[:n])
            arrays = arrays[n:]

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers: {[l.name for l in layers]}")

    def _forward(self, x, training):
        values, ctxs = {id(self.input): x}, {}
        for t in self._nodes[1:]:
            xs = [values[id(i)] for i in t.inputs]
            values[id(t)], ctxs[id(t)] = t.layer.forward(xs if len(xs) > 1 else xs[0], training)
        return values[id(self.output)], ctxs

    def _backward(self, dy, ctxs, logits_grad=False):
        grads = {id(self.output): dy}
        for t in reversed(self._nodes[1:]):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            need = any(i is not self.input for i in t.inputs)
            ctx = ctxs.pop(id(t))
            if logits_grad and t is self.output:
                dx = t.layer.backward_preactivation(g, ctx, need)
            else:
                dx = t.layer.backward(g, ctx, need)
            if dx is None:
                continue
            for i, d in zip(t.inputs, dx if len(t.inputs) > 1 else [dx]):
                if i is not self.input:
                    grads[id(i)] = d if id(i) not in grads else grads[id(i)] + d

    def __call__(self, x, training=False):
        self._ensure_built(np.shape(x)[1:])
        return self._forward(self._cast(x), training)[0]

    def _ensure_built(self, input_shape):
        if not self.built:
            raise ValueError("this model has no input shape yet")

    # ----------------------------------------------------------------- training
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Choose the optimizer, the loss and the metrics (names, functions or objects)."""
        unknown = set(kwargs) - {"loss_weights", "weighted_metrics", "run_eagerly",
                                 "steps_per_execution", "jit_compile"}
        if unknown or any(kwargs.get(k) for k in ("loss_weights", "weighted_metrics")):
            raise TypeError(f"compile() does not take {sorted(unknown) or 'loss weights'}")
        if loss is None:
            raise ValueError("compile() needs a loss")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self.compiled_metrics = [metrics_module.get(m, self.loss) for m in (metrics or [])]
        self._fused_softmax = False
        if self.built:
            self._check_fusion()

    def _check_fusion(self):
        last = self.output.layer
        self._fused_softmax = (isinstance(self.loss, losses.CrossEntropy)
                               and not self.loss.from_logits
                               and isinstance(last, ActivationMixin)
                               and last.activation.name == "softmax")

    def _require_compiled(self):
        if self.loss is None:
            raise RuntimeError("compile the model before training or evaluating it")

    @property
    def _xp(self):
        weights = self.weights
        return array_module(weights[0].value) if weights else np

    def _cast(self, x, what="x"):
        return cast_batch(self._xp, x, backend.floatx() if not self.weights
                          else self.weights[0].value.dtype, what)

    def _metrics(self, y, out):
        return {key: float(fn(y, out)) for key, fn in self.compiled_metrics}

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on one batch; returns ``[loss, *metrics]``."""
        self._require_compiled()
        self._ensure_built(np.shape(x)[1:])
        logs = self._train_step(self._cast(x), self._xp.asarray(y))
        return logs if return_dict else list(logs.values())

    def _train_step(self, x, y):
        for w in self.trainable_weights:
            w.grad = None
        out, ctxs = self._forward(x, training=True)
        if self._fused_softmax:
            loss, _ = self.loss.value_and_grad(y, out, grad=False)
            self._backward(self.loss.softmax_grad(y, out), ctxs, logits_grad=True)
        else:
            loss, grad = self.loss.value_and_grad(y, out)
            self._backward(grad, ctxs)
        self.optimizer.apply(self.trainable_weights)
        return {"loss": loss, **self._metrics(y, out)}

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` (Keras' arguments); returns the :class:`History`."""
        self._require_compiled()
        if class_weight is not None or sample_weight is not None:
            raise NotImplementedError("class_weight and sample_weight are not supported")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        batch_size = batch_size or 32
        if is_iterator(x):
            feed = IteratorFeed(x, steps_per_epoch)
            if validation_split:
                raise ValueError("validation_split needs arrays, not a generator")
        else:
            x = self._ensure_built_for(x)
            if y is None:
                raise ValueError("fit() needs labels y with array inputs")
            y = np.asarray(y)
            if validation_split and validation_data is None:
                if not 0 < validation_split < 1:
                    raise ValueError(f"validation_split must lie in (0, 1), got "
                                     f"{validation_split}")
                cut = int(len(x) * (1 - validation_split))
                x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
            if self._shuffle_rng is None:
                self._shuffle_rng = _random.generator()
            feed = ArrayFeed(x, y, batch_size, shuffle, self._shuffle_rng, steps_per_epoch)
        if validation_data is not None and len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val)")
        self.history = History()
        params = {"epochs": epochs, "steps": feed.steps, "verbose": verbose}
        cbs = CallbackList([self.history] + list(callbacks or []), self, params)
        self.stop_training, self._initial_epoch, self._interrupted = False, initial_epoch, False
        cbs.on_train_begin()
        try:
            for epoch in range(self._initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                logs = self._run_epoch(feed, epoch, epochs, verbose, cbs, validation_data,
                                       validation_batch_size or batch_size, validation_steps,
                                       (epoch + 1) % validation_freq == 0)
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        except BaseException:
            self._interrupted = True
            raise
        finally:
            cbs.on_train_end()
        return self.history

    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1,
                      callbacks=None, validation_data=None, validation_steps=None,
                      initial_epoch=0, **kwargs):
        """Keras 2's name for :meth:`fit` on a generator."""
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        verbose=verbose, callbacks=callbacks, validation_data=validation_data,
                        validation_steps=validation_steps, initial_epoch=initial_epoch, **kwargs)

    def _ensure_built_for(self, x):
        x = x if hasattr(x, "shape") else np.asarray(x)
        self._ensure_built(tuple(x.shape[1:]))
        return as_inputs(x, self.input.shape)

    def _run_epoch(self, feed, epoch, epochs, verbose, cbs, validation_data, val_batch,
                   val_steps, validate):
        start, seen, sums = time.perf_counter(), 0, {}
        bar = _progress(verbose, feed.steps, epoch, epochs)
        xp = self._xp
        for step, (xb, yb) in enumerate(feed.epoch()):
            xb = self._cast(xb)
            if len(xb) != len(yb):
                raise ValueError(f"a batch has {len(xb)} inputs but {len(yb)} labels")
            cbs.on_train_batch_begin(step)
            batch_logs = self._train_step(xb, xp.asarray(yb))
            n = len(xb)
            seen += n
            for k, v in batch_logs.items():
                sums[k] = sums.get(k, 0.0) + v * n
            logs = {k: v / seen for k, v in sums.items()}
            cbs.on_train_batch_end(step, logs)
            if bar is not None:
                bar.set_postfix_str(_format(logs), refresh=False)
                bar.update()
            if self.stop_training:
                break
        if validation_data is not None and validate:
            val = self.evaluate(validation_data[0], validation_data[1], batch_size=val_batch,
                                verbose=0, steps=val_steps, return_dict=True)
            logs.update({f"val_{k}": v for k, v in val.items()})
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.set_postfix_str(_format(logs), refresh=True)
            bar.close()
        elif verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {seconds:.0f}s - {_format(logs)}", flush=True)
        return logs

    # ----------------------------------------------------------------- inference
    def _batches(self, x, batch_size, steps, y=None):
        if is_iterator(x):
            steps = steps or len(x)
            it = iter(x)
            for _ in range(steps):
                batch = next(it)
                yield (batch[0], batch[1]) if isinstance(batch, tuple) else (batch, None)
            return
        x = self._ensure_built_for(x)
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        stop = len(x) if steps is None else min(len(x), steps * batch_size)
        for i in range(0, stop, batch_size):
            yield x[i:i + batch_size], None if y is None else y[i:i + batch_size]

    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """Outputs for ``x`` (inference mode: no dropout, moving batch statistics)."""
        outs = [to_numpy(self._forward(self._cast(xb), False)[0])
                for xb, _ in self._batches(x, batch_size or 32, steps)]
        if not outs:
            return np.zeros((0,) + self.output.shape, backend.floatx())
        return np.concatenate(outs)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=len(x))

    def evaluate(self, x=None, y=None, batch_size=None, verbose=1, steps=None,
                 return_dict=False):
        """Loss and metrics over ``(x, y)``: ``[loss, acc]`` (a float without metrics)."""
        self._require_compiled()
        if y is not None:
            y = np.asarray(y)
        sums, seen = {}, 0
        for xb, yb in self._batches(x, batch_size or 32, steps, y):
            if yb is None:
                raise ValueError("evaluate() needs labels y")
            out = self._forward(self._cast(xb), False)[0]
            yb = self._xp.asarray(yb)
            logs = {"loss": self.loss(yb, out), **self._metrics(yb, out)}
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * len(xb)
            seen += len(xb)
        if not seen:
            raise ValueError("evaluate() got no samples")
        logs = {k: v / seen for k, v in sums.items()}
        if verbose:
            print(_format(logs))
        if return_dict:
            return logs
        values = list(logs.values())
        return values if len(values) > 1 else values[0]

    def test_on_batch(self, x, y, return_dict=False):
        return self.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=return_dict)

    # ----------------------------------------------------------------- reporting and saving
    def summary(self, line_length=None, print_fn=None):
        """Keras' table of layers, output shapes and parameters, plus FLOPs per sample."""
        from fastconv.models.summary import summary
        summary(self, line_length, print_fn or print)

    def flops(self):
        """Forward floating-point operations for one sample (a multiply-add counts two)."""
        from fastconv.models.summary import layer_rows
        return sum(row.flops for row in layer_rows(self))

    def get_config(self):
        from fastconv.models.saving import model_config
        return model_config(self)

    def to_json(self):
        import json
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()})

    def save(self, filepath, include_optimizer=True):
        """Architecture (JSON) and weights in one ``.npz`` file; no pickle."""
        from fastconv.models.saving import save_model
        save_model(self, filepath, include_optimizer)

    def save_weights(self, filepath):
        from fastconv.models.saving import save_weights
        save_weights(self, filepath)

    def load_weights(self, filepath):
        from fastconv.models.saving import load_weights
        load_weights(self, filepath)


def _format(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def _progress(verbose, steps, epoch, epochs):
    if verbose != 1:
        return None
    from tqdm.auto import tqdm
    print(f"Epoch {epoch + 1}/{epochs}", flush=True)
    return tqdm(total=steps, file=sys.stdout, unit="step", dynamic_ncols=True,
                bar_format="{n_fmt}/{total_fmt} [{bar:30}] - {elapsed} {rate_fmt}{postfix}")
