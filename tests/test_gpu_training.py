"""Layers and training on the GPU: every layer on CuPy arrays gives the CPU reference's outputs
and gradients; a model trains to the same losses and weights on either device; device-side
dropout keeps its rate and its seed; a GPU-trained model saves and loads on the CPU.

Runs only where the 'cupy' backend loads (CuPy and a CUDA GPU); skipped with the reason
otherwise."""
import numpy as np
import pytest

import fastconv
from fastconv import backends, functional as F, layers as L
from fastconv._arrays import to_numpy
from fastconv.models import Sequential, load_model
from layer_checks import GRADIENT_CASES, IMAGE

try:
    backends.get("cupy")
    import cupy
except ImportError as err:
    pytest.skip(f"the 'cupy' backend does not load here: {err}", allow_module_level=True)

TOL = dict(rtol=1e-9, atol=1e-9)  # float64 on both devices


def _twins(make, input_shape):
    """The same layer built on the GPU and on the CPU, with equal weights."""
    with fastconv.use_backend("cupy"):
        gpu = make()
        gpu._ensure_built(input_shape)
    cpu = make()
    cpu._ensure_built(input_shape)
    cpu.set_weights(gpu.get_weights())
    assert all(isinstance(w.value, cupy.ndarray) for w in gpu.weights)
    return gpu, cpu


def _check_twins(gpu, cpu, inputs, rng, training=True):
    many = isinstance(inputs, list)
    on_gpu = [cupy.asarray(x) for x in inputs] if many else cupy.asarray(inputs)
    with fastconv.use_backend("reference"):
        y, ctx = cpu.forward(inputs, training)
    yg, ctxg = gpu.forward(on_gpu, training)
    assert isinstance(yg, cupy.ndarray)
    np.testing.assert_allclose(to_numpy(yg), y, **TOL)
    r = rng.standard_normal(y.shape)
    with fastconv.use_backend("reference"):
        dx = cpu.backward(r, ctx, True)
    dxg = gpu.backward(cupy.asarray(r), ctxg, True)
    for a, b in zip(dxg if many else [dxg], dx if many else [dx]):
        np.testing.assert_allclose(to_numpy(a), b, **TOL)
    for wg, wc in zip(gpu.weights, cpu.weights):
        if wc.grad is not None:
            np.testing.assert_allclose(to_numpy(wg.grad), wc.grad, err_msg=wc.name, **TOL)
        np.testing.assert_allclose(wg.numpy(), wc.value, err_msg=wc.name, **TOL)


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_layer_on_gpu_equals_cpu(case):
    rng = np.random.default_rng(3)
    gpu, cpu = _twins(GRADIENT_CASES[case], IMAGE[1:])
    _check_twins(gpu, cpu, rng.standard_normal(IMAGE), rng)


def test_dense_and_merges_on_gpu_equal_cpu():
    rng = np.random.default_rng(4)
    make = lambda: L.Dense(4, activation="relu", dtype="float64")  # noqa: E731
    _check_twins(*_twins(make, (5,)), rng.standard_normal((3, 5)), rng)
    a, b = rng.standard_normal(IMAGE), rng.standard_normal(IMAGE)
    _check_twins(*_twins(lambda: L.Add(dtype="float64"), [IMAGE[1:]] * 2), [a, b], rng)
    c = rng.standard_normal(IMAGE[:3] + (2,))
    _check_twins(*_twins(lambda: L.Concatenate(dtype="float64"), [a.shape[1:], c.shape[1:]]),
                 [a, c], rng)


def test_batch_norm_inference_on_gpu_equals_cpu():
    rng = np.random.default_rng(5)
    gpu, cpu = _twins(lambda: L.BatchNormalization(dtype="float64"), IMAGE[1:])
    _check_twins(gpu, cpu, rng.standard_normal(IMAGE), rng)          # moving statistics move
    _check_twins(gpu, cpu, rng.standard_normal(IMAGE), rng, training=False)


def test_device_dropout_keeps_its_rate_and_seed():
    x = cupy.ones((64, 32, 32, 8), cupy.float32)
    masks = []
    for _ in range(2):
        layer = L.Dropout(0.3, seed=11)
        layer._ensure_built(x.shape[1:])
        masks.append(layer.forward(x, training=True)[0])
    np.testing.assert_array_equal(to_numpy(masks[0]), to_numpy(masks[1]))
    kept = to_numpy(masks[0] != 0)
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(to_numpy(masks[0])[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept[:, :16].mean() - kept[:, 16:].mean()) < 0.01   # no pattern by position
    second = layer.forward(x, training=True)[0]                      # a new mask every step
    assert float((second != masks[0]).mean()) > 0.3
    assert layer.forward(x, training=False)[0] is x


@pytest.mark.parametrize("noise_shape", [None, (5, 1, 1, 3)])
def test_dropout_and_relu_gradient_equal_the_cpu_bit_for_bit(noise_shape):
    x = np.random.default_rng(6).standard_normal((5, 4, 6, 3)).astype(np.float32)
    got = F.dropout(cupy.asarray(x), 0.4, 99, noise_shape)
    np.testing.assert_array_equal(to_numpy(got), F.dropout(x, 0.4, 99, noise_shape))
    np.testing.assert_array_equal(to_numpy(F.relu_backward(cupy.asarray(x), cupy.asarray(-x))),
                                  F.relu_backward(x, -x))


def _net():
    return Sequential([
        L.Conv2D(8, 3, activation="relu", input_shape=(12, 12, 1)),
        L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.Flatten(),
        L.Dense(10, activation="softmax"),
    ])


def _trained(rng_seed, x, y, on_gpu):
    fastconv.utils.set_random_seed(rng_seed)
    if on_gpu:
        with fastconv.use_backend("cupy"):
            model = _net()
    else:
        model = _net()
    model.compile(loss="categorical_crossentropy", optimizer=fastconv.optimizers.Adam(1e-2),
                  metrics=["acc"])
    losses = [model.train_on_batch(x[i:i + 16], y[i:i + 16])[0] for i in range(0, 64, 16)]
    return model, losses


def test_training_on_gpu_follows_the_cpu():
    rng = np.random.default_rng(6)
    x = rng.random((64, 12, 12, 1), np.float32)
    y = fastconv.utils.to_categorical(rng.integers(0, 10, 64), 10)
    gpu, gpu_losses = _trained(0, x, y, True)
    with fastconv.use_backend("reference"):
        cpu, cpu_losses = _trained(0, x, y, False)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for a, b in zip(gpu.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert isinstance(gpu.predict(x[:5]), np.ndarray)   # Keras' contract: NumPy out


def test_gpu_model_learns_mnist_and_loads_on_the_cpu(tmp_path):
    (x, y), (xt, yt) = fastconv.datasets.mnist.load_data()
    x, xt = x[:4096, ..., None] / np.float32(255), xt[:1000, ..., None] / np.float32(255)
    y, yt = fastconv.utils.to_categorical(y[:4096], 10), fastconv.utils.to_categorical(yt[:1000])
    fastconv.utils.set_random_seed(0)
    with fastconv.use_backend("cupy"):
        model = fastconv.applications.summary_net()   # on the CPU: 0.93 for seeds 0, 1, 2
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["acc"])
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0, validation_data=(xt, yt))
    assert history.history["val_acc"][-1] > 0.9, history.history
    model.save(tmp_path / "gpu.npz")
    cpu = load_model(tmp_path / "gpu.npz")
    assert not isinstance(cpu.weights[0].value, cupy.ndarray)
    with fastconv.use_backend("reference"):
        np.testing.assert_allclose(cpu.predict(xt[:64]), model.predict(xt[:64]), atol=1e-4)
