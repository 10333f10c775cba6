"""Whole-model forward throughput (images/s, inference mode) of the lecture's ImageNet
architectures at their native sizes, batch 1 and 16: fastconv on each CPU backend beside
PyTorch running the same graph (``torch_peer.translate``, NCHW), in the same run.

One warm-up and a few timed calls per case (a batch of 16 through Inception-ResNet-v2 takes
about 10 s here); ``-k "resnet50"`` picks one model."""
import functools

import numpy as np
import pytest

import fastconv
from fastconv import applications, backends, utils

torch = pytest.importorskip("torch", reason="the benchmark's peer is PyTorch: pip install .[bench]")
from torch_peer import translate  # noqa: E402

MODELS = ["ResNet50", "ResNet34", "ResNeXt50", "VGG16", "VGG19", "AlexNet", "InceptionV1",
          "InceptionV3", "InceptionV4", "InceptionResNetV2", "Xception"]
ROUNDS = {1: 5, 16: 3}
IMPLS = ["torch"] + [name for name in ("cython", "numba") if name in backends.available()]
CASES = [(name, batch, impl) for name in MODELS for batch in ROUNDS for impl in IMPLS]


@functools.lru_cache(maxsize=1)
def _model(name):
    """The model, kept while the cases of one model run (they are consecutive)."""
    utils.set_random_seed(0)
    return getattr(applications, name)()


@pytest.mark.parametrize("name, batch, impl", CASES,
                         ids=[f"{n.lower()}-b{b}-{i}" for n, b, i in CASES])
def test_forward(record, benchmark, name, batch, impl):
    benchmark.group = f"{name.lower()} forward, batch {batch}"
    model = _model(name)
    x = np.random.default_rng(0).random((batch,) + model.input_shape[1:], dtype=np.float32)
    if impl == "torch":
        torch.manual_seed(0)
        net = translate(model).eval()
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

        def fn():
            with torch.no_grad():
                net(xt)
    else:
        def fn():
            with fastconv.use_backend(impl):
                model(x)
    record(fn, flops=model.flops() * batch, rounds=ROUNDS[batch], impl=impl, images=batch)
    benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median
