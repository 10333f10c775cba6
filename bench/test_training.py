"""Whole-model training steps (forward + backward + Adadelta update) of the lecture's nets:
fastconv on each CPU backend beside PyTorch running the same architecture, same batch."""
import numpy as np
import pytest

import fastconv
from fastconv import backends, utils
from fastconv.applications import cifar10_net, mnist_net

torch = pytest.importorskip("torch", reason="the benchmark's peer is PyTorch: pip install .[bench]")
from torch_peer import adadelta, train_step, translate  # noqa: E402

NETS = {"mnist_net": (mnist_net, (28, 28, 1), 512), "cifar10_net": (cifar10_net, (32, 32, 3), 128)}
IMPLS = ["torch"] + [name for name in ("cython", "numba") if name in backends.available()]
CASES = [(net, impl) for net in NETS for impl in IMPLS]


@pytest.mark.parametrize("net, impl", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_train_step(record, benchmark, net, impl):
    build, shape, batch = NETS[net]
    benchmark.group = f"{net} train step, batch {batch}"
    rng = np.random.default_rng(0)
    x = rng.random((batch,) + shape, dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    utils.set_random_seed(0)
    model = build(input_shape=shape)
    flops = 3 * model.flops() * batch          # forward, and backward at twice its cost
    if impl == "torch":
        torch.manual_seed(0)
        net_t = translate(model).train()
        step = train_step(net_t, adadelta(net_t))
        xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels)
        fn = lambda: step(xt, yt)  # noqa: E731
    else:
        model.compile(optimizer="adadelta", loss="categorical_crossentropy")
        y = utils.to_categorical(labels, 10)

        def fn():
            with fastconv.use_backend(impl):
                model.train_on_batch(x, y)
    record(fn, flops=flops, impl=impl, images=batch)
    benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median
