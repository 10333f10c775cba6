"""Models: graph gradients, losses, optimizers, saving, callbacks, resuming and the Keras
namespaces."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv as keras
from fastconv import callbacks, layers as L, losses, optimizers
from fastconv.applications import example_25x25_net, mnist_net, summary_net, LeNet5
from fastconv.models import Model, load_model, model_from_json
from layer_checks import _numeric


@pytest.fixture
def rng():
    return np.random.default_rng(3)


def branchy_model(dtype="float64"):
    """Conv → (conv ‖ conv) → add, concat with the input, BN, pool → dense softmax."""
    inp = L.Input((6, 6, 2))
    a = L.Conv2D(3, 3, padding="same", activation="relu", dtype=dtype)(inp)
    b = L.Conv2D(3, 1, activation="tanh", dtype=dtype)(a)
    c = L.DepthwiseConv2D(3, padding="same", dtype=dtype)(a)
    s = L.add([b, c], dtype=dtype)
    s = L.concatenate([s, inp], dtype=dtype)
    s = L.BatchNormalization(momentum=0.8, dtype=dtype)(s)
    s = L.MaxPooling2D(dtype=dtype)(s)
    s = L.Flatten(dtype=dtype)(s)
    out = L.Dense(4, activation="softmax", dtype=dtype)(s)
    return Model(inp, out)


def test_model_gradient_by_finite_differences(rng):
    model = branchy_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = rng.standard_normal((5, 6, 6, 2))
    y = keras.utils.to_categorical(rng.integers(0, 4, 5), 4)
    out, ctxs = model._forward(x, training=True)
    for w in model.trainable_weights:
        w.grad = None
    model._backward(model.loss.softmax_grad(y, out), ctxs, logits_grad=True)

    def loss():
        return model.loss(y, model._forward(x, training=True)[0])
    for w in model.trainable_weights:
        idx = tuple(rng.integers(0, s) for s in w.value.shape)
        np.testing.assert_allclose(w.grad[idx], _numeric(loss, w.value, idx), rtol=1e-5,
                                   atol=1e-8, err_msg=w.name)


def test_fused_softmax_gradient_equals_the_chain_rule(rng):
    model = branchy_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = rng.standard_normal((4, 6, 6, 2)), keras.utils.to_categorical([0, 1, 2, 3], 4)
    grads = []
    for fused in (True, False):
        out, ctxs = model._forward(x, training=True)
        for w in model.trainable_weights:
            w.grad = None
        if fused:
            model._backward(model.loss.softmax_grad(y, out), ctxs, logits_grad=True)
        else:
            model._backward(model.loss.value_and_grad(y, out)[1], ctxs)
        grads.append([w.grad.copy() for w in model.trainable_weights])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert model._fused_softmax


def test_losses_match_their_formulas(rng):
    p = keras.activations.softmax(rng.standard_normal((6, 5)))
    labels = rng.integers(0, 5, 6)
    y = keras.utils.to_categorical(labels, 5)
    expected = -np.log(p[np.arange(6), labels]).mean()
    assert losses.get("categorical_crossentropy")(y, p) == pytest.approx(expected)
    assert losses.get("sparse_categorical_crossentropy")(labels, p) == pytest.approx(expected)
    np.testing.assert_allclose(keras.losses.categorical_crossentropy(y, p),
                               -np.log(p[np.arange(6), labels]), rtol=1e-6)
    z = rng.standard_normal((6, 5))
    assert losses.CategoricalCrossentropy(from_logits=True)(y, z) == pytest.approx(
        losses.get("categorical_crossentropy")(y, keras.activations.softmax(z)))
    assert losses.get("mse")(y, p) == pytest.approx(((y - p) ** 2).mean())
    with pytest.raises(ValueError, match="to_categorical"):
        losses.get("categorical_crossentropy")(labels, p)


def _one_step(opt, g, steps=2):
    w = L.Weight("w", np.array([1.0, -2.0]))
    for _ in range(steps):
        w.grad = g.copy()
        opt.apply([w])
    return w.value


def test_optimizers_follow_keras_update_rules():
    g = np.array([0.5, -1.0])
    np.testing.assert_allclose(_one_step(optimizers.SGD(0.1), g), [1 - 0.1, -2 + 0.2])
    v1 = -0.1 * g
    v2 = 0.9 * v1 - 0.1 * g
    np.testing.assert_allclose(_one_step(optimizers.SGD(0.1, momentum=0.9), g),
                               np.array([1.0, -2.0]) + v1 + v2)
    np.testing.assert_allclose(_one_step(optimizers.SGD(0.1, momentum=0.9, nesterov=True), g,
                                         1), np.array([1.0, -2.0]) + 0.9 * v1 - 0.1 * g)
    # Adam's first step moves each weight by lr (sign of the gradient)
    np.testing.assert_allclose(_one_step(optimizers.Adam(0.01), g, 1), [0.99, -1.99], rtol=1e-6)
    a = 0.05 * g * g                                           # Adadelta, Keras 2.3 defaults
    step = g * np.sqrt(1e-7) / np.sqrt(a + 1e-7)
    np.testing.assert_allclose(_one_step(optimizers.Adadelta(), g, 1),
                               np.array([1.0, -2.0]) - step, rtol=1e-6)
    a = 0.1 * g * g
    np.testing.assert_allclose(_one_step(optimizers.RMSprop(), g, 1),
                               np.array([1.0, -2.0]) - 0.001 * g / (np.sqrt(a) + 1e-7))
    assert optimizers.Adadelta().get_config()["learning_rate"] == 1.0
    assert optimizers.Adadelta().lr == 1.0 and optimizers.get("adam").beta_2 == 0.999


def test_summary_prints_the_lecture_table():
    keras.backend.clear_session()
    lines = []
    model = summary_net()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for count in ("320", "18496", "36928", "650"):
        assert count in text
    assert "Total params: 93,322" in text and "Non-trainable params: 0" in text
    assert "conv2d (Conv2D)              (None, 26, 26, 32)        320" in text
    assert "flatten (Flatten)            (None, 576)" in text
    assert [layer.count_params() for layer in model.layers if layer.weights] == \
        [320, 18496, 36928, 36928, 650]
    assert model.flops() == 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 3 * 3 * 64 * 9 * 64
                                 + 576 * 64 + 64 * 10) + 13 * 13 * 32 * 4 + 5 * 5 * 64 * 4


def test_lecture_networks():
    assert mnist_net().count_params() == 2_782_090
    assert example_25x25_net().output_shape == (None, 1152)
    assert LeNet5().count_params() == 61_706
    assert LeNet5((28, 28, 1)).output_shape == (None, 10)
    lines = []
    branchy_model().summary(print_fn=lines.append)
    assert any("Connected to" in line for line in lines)


def _train_set(rng, n=64):
    x = rng.standard_normal((n, 6, 6, 2)).astype(np.float32)
    labels = (x[:, :3].mean(axis=(1, 2, 3)) > 0).astype(int) + 2 * (x[..., 1].mean(
        axis=(1, 2)) > 0)
    return x, keras.utils.to_categorical(labels, 4)


def _fresh(seed=0, optimizer="adam"):
    keras.utils.set_random_seed(seed)
    model = branchy_model("float32")
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["acc"])
    return model


def test_fit_learns_and_reports_like_keras(rng):
    x, y = _train_set(rng, 256)
    model = _fresh(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(x, y, batch_size=32, epochs=25, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert len(history.history["loss"]) == 25 and history.epoch == list(range(25))
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.85 and isinstance(loss, float)
    p = model.predict(x[:10])
    assert p.shape == (10, 4) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


def test_same_seed_same_run(rng):
    x, y = _train_set(rng)
    runs = []
    for _ in range(2):
        model = _fresh(seed=5)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_generator_input_and_fit_generator(rng):
    x, y = _train_set(rng)

    def batches():
        while True:
            for i in range(0, 64, 16):
                yield x[i:i + 16], y[i:i + 16]
    model = _fresh()
    h = model.fit_generator(batches(), steps_per_epoch=4, epochs=2, validation_data=(x, y),
                            verbose=2)
    assert len(h.history["val_acc"]) == 2
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(batches(), epochs=1, verbose=0)


def test_bad_training_input_is_refused(rng):
    x, y = _train_set(rng)
    model = _fresh()
    bad = x.copy()
    bad[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="samples of shape"):
        model.fit(x[:, :5], y, verbose=0)
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(x, y.argmax(1), verbose=0)
    with pytest.raises(ValueError, match="64 samples but y has 10"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        branchy_model().fit(x, y)


def test_save_and_load_model(tmp_path, rng):
    x, y = _train_set(rng)
    model = _fresh()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.h5")
    again = load_model(tmp_path / "m.h5")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.optimizer.get_config() == model.optimizer.get_config()
    assert again.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    seq = summary_net()
    seq.save_weights(tmp_path / "w.npz")
    twin = summary_net()
    twin.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(twin.get_weights()[0], seq.get_weights()[0])
    assert model_from_json(seq.to_json()).count_params() == 93_322
    assert type(load_model(_saved(seq, tmp_path))).__name__ == "Sequential"


def _saved(model, tmp_path):
    model.save(tmp_path / "seq.npz")
    return tmp_path / "seq.npz"


def test_loading_refuses_other_architectures_and_corrupt_files(tmp_path):
    summary_net().save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="another architecture"):
        mnist_net().load_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="another architecture"):
        summary_net(input_shape=(28, 28, 3)).load_weights(tmp_path / "w.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable fastconv file"):
        load_model(tmp_path / "junk.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a readable fastconv file"):
        summary_net().load_weights(tmp_path / "foreign.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


class _StopAt(callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_exactly(tmp_path, rng):
    x, y = _train_set(rng)
    straight = _fresh(seed=9)
    expected = straight.fit(x, y, batch_size=16, epochs=4, verbose=0).history
    model = _fresh(seed=9)
    backup = callbacks.BackupAndRestore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[backup, _StopAt(2)])
    assert os.path.exists(backup.path)
    resumed = _fresh(seed=1234)          # a new process: other seed, same architecture
    history = resumed.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[backup]).history
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-6)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not os.path.exists(backup.path)


def test_reduce_lr_early_stopping_and_checkpoints(tmp_path, rng):
    x, y = _train_set(rng)
    model = _fresh(optimizer=keras.optimizers.SGD(0.0))     # no progress: a plateau
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.0)
    model.optimizer.learning_rate = 1e-9
    stop = callbacks.EarlyStopping(monitor="loss", patience=3, min_delta=0.05)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.2f}.npz"),
                                     save_weights_only=True)
    h = model.fit(x, y, epochs=20, verbose=0, callbacks=[reduce, stop, ckpt])
    assert len(h.epoch) == 4 and model.optimizer.learning_rate < 1e-9
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 4 and names[0].startswith("e01-")
    with pytest.raises(KeyError, match="val_acc"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.ReduceLROnPlateau(monitor="val_acc")])


def test_keras_namespaces_resolve_lazily(tmp_path):
    code = ("import sys, fastconv as keras; assert 'matplotlib' not in sys.modules; "
            "assert 'tqdm' not in sys.modules and 'numba' not in sys.modules; "
            "keras.utils.to_categorical; keras.losses.categorical_crossentropy; "
            "keras.optimizers.Adadelta; keras.callbacks.ReduceLROnPlateau; "
            "keras.layers.Conv2D; keras.models.Sequential; keras.Sequential; "
            "keras.datasets.mnist.load_data; keras.preprocessing.image.ImageDataGenerator; "
            "print(keras.backend.image_data_format())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "channels_last"
