"""fastconv inside PyTorch (fastconv.interop.torch): the custom ops pass torch.library.opcheck
and gradcheck and match torch.nn.functional; channels_last tensors run the NHWC kernels in their
own memory; the drop-in modules match torch.nn's, down to training the lecture's nets."""
import dataclasses
import importlib.util
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install '.[torch]'")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fastconv  # noqa: E402
from fastconv.applications import mnist_net, summary_net  # noqa: E402
from fastconv.datasets import mnist  # noqa: E402
from fastconv.interop import torch as ft  # noqa: E402
from fastconv.layers import Conv2D  # noqa: E402
from strategies import ConvCase, conv_cases, pool_cases  # noqa: E402

_PEER = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "torch_peer.py")
_spec = importlib.util.spec_from_file_location("torch_peer", _PEER)
torch_peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(torch_peer)  # translate(): a fastconv Sequential as an nn.Sequential

OPS = torch.ops.fastconv
DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}
CL = torch.channels_last


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """PyTorch's and fastconv's OpenMP pools thrash each other when other processes hold the
    cores (measured: 3 s → 30-70 s for the MNIST test); nothing compared here needs threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _conv_inputs(case, dtype, seed, channels_last=False, bias=True):
    """x (NCHW, or channels_last memory), OIHW weight, bias, all requiring grad; the op's
    non-tensor arguments with padding as (top, bottom, left, right)."""
    gen = torch.Generator().manual_seed(seed)
    g = case.geometry()
    x = torch.randn(case.n, case.c, case.h, case.w, generator=gen, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    w = torch.randn(case.o, case.c // case.groups, case.kh, case.kw, generator=gen, dtype=dtype)
    b = torch.randn(case.o, generator=gen, dtype=dtype) if bias else None
    tensors = [t if t is None else t.requires_grad_() for t in (x, w, b)]
    return tensors, ((g.sh, g.sw), (g.pt, g.pb, g.pl, g.pr), (g.dil_h, g.dil_w), case.groups)


def _torch_conv(x, w, b, stride, pads, dilation, groups):
    t, bottom, left, r = pads
    return F.conv2d(F.pad(x, (left, r, t, bottom)), w, b, stride, 0, dilation, groups)


# ---------------------------------------------------------------------- opcheck
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=4)
@given(case=conv_cases(), seed=st.integers(0, 2**31), channels_last=st.booleans(),
       bias=st.booleans())
def test_conv2d_opcheck(dtype, case, seed, channels_last, bias):
    tensors, args = _conv_inputs(case, dtype, seed, channels_last, bias)
    torch.library.opcheck(OPS.conv2d.default, (*tensors, *args))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=3)
@given(case=pool_cases(), seed=st.integers(0, 2**31), channels_last=st.booleans())
def test_pool2d_opcheck(mode, dtype, case, seed, channels_last):
    g = dataclasses.replace(case, strides=case.strides or (case.kh, case.kw)).geometry()
    x = torch.randn(case.n, case.c, case.h, case.w, dtype=dtype,
                    generator=torch.Generator().manual_seed(seed))
    x = x.contiguous(memory_format=CL if channels_last else torch.contiguous_format)
    op = getattr(OPS, f"{mode}_pool2d").default
    torch.library.opcheck(op, (x.requires_grad_(), (g.kh, g.kw), (g.sh, g.sw),
                               (g.pt, g.pb, g.pl, g.pr)))


# ---------------------------------------------------------------------- gradcheck
GRAD_CASES = {  # name: conv_cases-like geometry (n, c, h, w, o, k, stride, padding, dil, groups)
    "bias": (2, 2, 5, 4, 3, (3, 3), (1, 1), 0, (1, 1), 1),
    "stride_padding": (1, 2, 6, 5, 3, (3, 2), (2, 3), ((1, 0), (2, 1)), (1, 1), 1),
    "dilation": (1, 2, 6, 7, 2, (2, 3), (1, 2), 1, (2, 2), 1),
    "groups": (1, 4, 5, 4, 6, (3, 3), (1, 1), 1, (1, 1), 2),
    "depthwise": (1, 3, 6, 5, 6, (3, 3), (2, 1), ((0, 1), (1, 1)), (1, 2), 3),
}


def _case(n, c, h, w, o, k, stride, padding, dilation, groups):
    return ConvCase(n, h, w, c, o, k[0], k[1], stride, padding, dilation, groups)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", GRAD_CASES)
def test_conv2d_gradcheck(name, channels_last):
    tensors, args = _conv_inputs(_case(*GRAD_CASES[name]), torch.float64, 0, channels_last)
    assert torch.autograd.gradcheck(lambda *t: OPS.conv2d(*t, *args), tensors)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool2d_gradcheck(mode, channels_last):
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=CL if channels_last else torch.contiguous_format)
    pool = getattr(ft, f"{mode}_pool2d")
    assert torch.autograd.gradcheck(lambda t: pool(t, (3, 2), (2, 1), (1, 1)),
                                    (x.requires_grad_(),))


# ---------------------------------------------------------------------- against torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=conv_cases(), seed=st.integers(0, 2**31), channels_last=st.booleans())
def test_conv2d_matches_torch(dtype, case, seed, channels_last):
    (x, w, b), args = _conv_inputs(case, dtype, seed, channels_last)
    y, expected = OPS.conv2d(x, w, b, *args), _torch_conv(x, w, b, *args)
    torch.testing.assert_close(y, expected, **TOL[dtype])
    dy = torch.randn_like(expected)
    grads = torch.autograd.grad(y, (x, w, b), dy)
    for got, want in zip(grads, torch.autograd.grad(expected, (x, w, b), dy)):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(2, 12), w=st.integers(2, 12),
       k=st.tuples(st.integers(1, 4), st.integers(1, 4)), data=st.data(),
       count_include_pad=st.booleans(), channels_last=st.booleans(), seed=st.integers(0, 2**31))
def test_pooling_matches_torch(dtype, n, c, h, w, k, data, count_include_pad, channels_last,
                               seed):
    stride = data.draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = data.draw(st.tuples(st.integers(0, k[0] // 2), st.integers(0, k[1] // 2)))
    x = torch.randn(n, c, h + k[0], w + k[1], dtype=dtype,
                    generator=torch.Generator().manual_seed(seed))
    x = x.contiguous(memory_format=CL if channels_last else torch.contiguous_format)
    x.requires_grad_()
    pairs = [(ft.max_pool2d(x, k, stride, padding), F.max_pool2d(x, k, stride, padding)),
             (ft.avg_pool2d(x, k, stride, padding, count_include_pad),
              F.avg_pool2d(x, k, stride, padding, count_include_pad=count_include_pad))]
    for y, expected in pairs:
        torch.testing.assert_close(y, expected, **TOL[dtype])
        dy = torch.randn_like(expected)
        torch.testing.assert_close(torch.autograd.grad(y, x, dy)[0],
                                   torch.autograd.grad(expected, x, dy)[0], **TOL[dtype])


def test_non_contiguous_input_matches_torch():
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64)[:, ::2, 1:, ::2]
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(ft.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))


# ---------------------------------------------------------------------- channels_last
@pytest.fixture
def kernel_pointers(monkeypatch):
    """Pointers of the arrays the configured backend's kernels read and write, by method."""
    backend = fastconv.backends.get(fastconv.get_backend())
    seen = {}

    def spy(name):
        real = getattr(backend, name)

        def call(*args, **kwargs):
            out = real(*args, **kwargs)
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            outs = out if isinstance(out, tuple) else (out,)
            seen[name] = ([a.ctypes.data for a in arrays],
                          [a.ctypes.data for a in outs if a is not None])
            return out
        monkeypatch.setattr(backend, name, call)

    for name in ("conv2d", "conv2d_backward", "pool2d", "pool2d_backward"):
        spy(name)
    return seen


def test_channels_last_runs_in_place(kernel_pointers):
    x = torch.randn(2, 3, 8, 7).contiguous(memory_format=CL).requires_grad_()
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    y = ft.conv2d(x, w, torch.zeros(4), padding=1)
    reads, writes = kernel_pointers["conv2d"]
    assert reads[0] == x.data_ptr() and writes == [y.data_ptr()]
    assert y.is_contiguous(memory_format=CL) and not y.is_contiguous()
    p = ft.max_pool2d(y, 2)
    reads, writes = kernel_pointers["pool2d"]
    assert reads == [y.data_ptr()] and writes == [p.data_ptr()]
    assert p.is_contiguous(memory_format=CL)
    dp = torch.randn(p.shape).contiguous(memory_format=CL)
    p.backward(dp)
    assert kernel_pointers["pool2d_backward"][0] == [dp.data_ptr(), y.data_ptr()]
    reads, writes = kernel_pointers["conv2d_backward"]
    assert reads[1] == x.data_ptr() and writes[0] == x.grad.data_ptr()
    assert x.grad.is_contiguous(memory_format=CL)


# ---------------------------------------------------------------------- modules
CONV_MODULES = [  # in, out, kernel, stride, padding, dilation, groups, bias
    (3, 4, 2, 1, "same", 1, 1, True),
    (3, 4, 4, 1, "same", 1, 1, True),
    (2, 2, (2, 3), 1, "same", (3, 2), 2, True),
    (3, 6, 3, 2, (1, 0), 1, 3, False),
    (4, 5, (1, 3), (2, 1), "valid", (1, 2), 1, True),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("args", CONV_MODULES)
def test_conv2d_module_matches_nn(args):
    torch.manual_seed(0)
    ours = ft.Conv2d(*args, dtype=torch.float64)
    torch.manual_seed(0)
    theirs = nn.Conv2d(*args, dtype=torch.float64)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q)  # PyTorch's default init
    x = torch.randn(2, args[0], 9, 8, dtype=torch.float64)
    y, expected = ours(x), theirs(x)
    torch.testing.assert_close(y, expected)
    dy = torch.randn_like(y)
    y.backward(dy)
    expected.backward(dy)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.parametrize("module, kwargs", [
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("AvgPool2d", dict(kernel_size=(3, 2), padding=(1, 1))),
    ("AvgPool2d", dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)),
])
def test_pool_modules_match_nn(module, kwargs):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(getattr(ft, module)(**kwargs)(x), getattr(nn, module)(**kwargs)(x))


def test_unsupported_arguments_raise():
    with pytest.raises(ValueError, match="zeros only"):
        ft.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="ceil_mode"):
        ft.MaxPool2d(2, ceil_mode=True)
    with pytest.raises(ValueError, match="divisor_override"):
        ft.AvgPool2d(2, divisor_override=3)
    with pytest.raises(ValueError, match="stride 1"):
        ft.conv2d(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 2, 2), stride=2, padding="same")
    with pytest.raises(TypeError, match="torch.Tensor"):
        ft.conv2d(np.ones((1, 1, 5, 5)), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ft.max_pool2d(torch.ones(1, 5, 5), 2)
    with pytest.raises(TypeError, match="float16"):
        ft.conv2d(torch.ones(1, 1, 5, 5, dtype=torch.float16),
                  torch.ones(1, 1, 2, 2, dtype=torch.float16))


# ---------------------------------------------------------------------- end to end
def _mnist(n_train, n_test=1000):
    (x, y), (xt, yt) = mnist.load_data()
    as_tensors = lambda a, b: (torch.from_numpy(a[:, None] / np.float32(255)),  # noqa: E731
                               torch.from_numpy(b.astype(np.int64)))
    return as_tensors(x[:n_train], y[:n_train]), as_tensors(xt[:n_test], yt[:n_test])


def _lecture_net(build, swap):
    """The fastconv model ``build()`` in PyTorch (seeded init); with ``swap``, every nn.Conv2d
    in it, at any depth, replaced by fastconv's Conv2d holding the same weights."""
    model = build()
    torch.manual_seed(0)
    net = torch_peer.translate(model)
    if swap:
        convs = [(parent, name, m) for parent in net.modules()
                 for name, m in parent.named_children() if type(m) is nn.Conv2d]
        assert len(convs) == sum(isinstance(layer, Conv2D) for layer in model.layers)
        for parent, name, m in convs:
            ours = ft.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                             m.dilation, m.groups, m.bias is not None)
            ours.load_state_dict(m.state_dict())
            setattr(parent, name, ours)
    return net


def _train(net, x, y, steps=None, batch=32, lr=2e-3):
    """Adam on shuffled batches (seeded) for an epoch or ``steps`` steps: the losses."""
    torch.manual_seed(1)
    optimizer = torch.optim.Adam(net.parameters(), lr)
    order = torch.randperm(len(x))
    losses = []
    for i in range(0, len(x) if steps is None else steps * batch, batch):
        idx = order[i:i + batch]
        optimizer.zero_grad()
        loss = F.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_summary_net_learns_mnist_as_with_nn_conv2d():
    """The lecture's summary-slide net on 3072 MNIST images, one epoch: same accuracy."""
    (x, y), (xt, yt) = _mnist(3072)
    accuracies = []
    for swap in (False, True):
        net = _lecture_net(summary_net, swap)
        _train(net, x, y)
        with torch.no_grad():
            accuracies.append((net.eval()(xt).argmax(1) == yt).float().mean().item())
    print("test accuracy, nn.Conv2d vs fastconv Conv2d:", accuracies)
    assert min(accuracies) > 0.85 and abs(accuracies[0] - accuracies[1]) <= 0.02


def test_lecture_mnist_net_trains_step_for_step_as_with_nn_conv2d():
    """The lecture's MNIST net (five convolutions, dropout): same init, same dropout masks,
    so the losses of a few Adam steps agree to float32 rounding."""
    (x, y), _ = _mnist(256, 0)
    runs = []
    for swap in (False, True):
        runs.append(_train(_lecture_net(mnist_net, swap), x, y, steps=4))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-3)


# ---------------------------------------------------------------------- CUDA tensors
def _cuda_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA GPU: the CUDA-tensor path is checked on a GPU only")
    if "cupy" not in fastconv.available_backends():
        pytest.skip("fastconv's 'cupy' backend does not load: CUDA tensors run through CuPy")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", GRAD_CASES)
def test_cuda_conv2d_opcheck_gradcheck_and_torch(name, channels_last):
    _cuda_or_skip()
    tensors, args = _conv_inputs(_case(*GRAD_CASES[name]), torch.float64, 0, channels_last)
    tensors = [t.detach().cuda().requires_grad_() for t in tensors]
    if channels_last:
        tensors[0] = tensors[0].detach().contiguous(memory_format=CL).requires_grad_()
    torch.library.opcheck(OPS.conv2d.default, (*tensors, *args))
    assert torch.autograd.gradcheck(lambda *t: OPS.conv2d(*t, *args), tensors)
    y = OPS.conv2d(*tensors, *args)
    assert y.device == tensors[0].device
    torch.testing.assert_close(y, _torch_conv(*tensors, *args), **TOL[torch.float64])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_cuda_pool2d_opcheck_gradcheck_and_torch(mode, channels_last):
    _cuda_or_skip()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, device="cuda")
    x = x.contiguous(memory_format=CL if channels_last else torch.contiguous_format)
    x.requires_grad_()
    op = getattr(OPS, f"{mode}_pool2d").default
    torch.library.opcheck(op, (x, (3, 2), (2, 1), (1, 1, 1, 1)))
    pool = getattr(ft, f"{mode}_pool2d")
    assert torch.autograd.gradcheck(lambda t: pool(t, (3, 2), (2, 1), (1, 1)), (x,))
    torch.testing.assert_close(pool(x, (3, 2), (2, 1), (1, 1)),
                               getattr(F, f"{mode}_pool2d")(x, (3, 2), (2, 1), (1, 1)))


def test_cuda_tensors_run_in_place_on_the_current_stream():
    _cuda_or_skip()
    import cupy
    x = torch.randn(4, 16, 32, 32, device="cuda", dtype=torch.float64)
    x = x.contiguous(memory_format=CL)
    w = torch.randn(32, 16, 3, 3, device="cuda", dtype=torch.float64)
    seen = {}
    real = fastconv.backends.get("cupy").conv2d

    def spy(xa, *args, **kwargs):
        seen["x"], seen["stream"] = xa.data.ptr, cupy.cuda.get_current_stream().ptr
        return real(xa, *args, **kwargs)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())   # x and w were made on the default stream
    fastconv.backends.get("cupy").conv2d = spy
    try:
        with torch.cuda.stream(stream):
            y = ft.conv2d(x, w, padding=1)
        stream.synchronize()
    finally:
        fastconv.backends.get("cupy").conv2d = real
    assert seen == {"x": x.data_ptr(), "stream": stream.cuda_stream}
    assert y.is_cuda and y.is_contiguous(memory_format=CL)
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1))


def test_cuda_mnist_net_with_fastconv_conv2d_trains():
    _cuda_or_skip()
    torch.manual_seed(0)
    (x, y), _ = mnist.load_data()
    x = torch.from_numpy(x[:2048, None] / np.float32(255)).cuda()
    y = torch.from_numpy(y[:2048].astype(np.int64)).cuda()
    net = nn.Sequential(ft.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), ft.Conv2d(16, 32, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(32 * 11 * 11, 10)).cuda()
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    for _ in range(3):
        for i in range(0, 2048, 128):
            opt.zero_grad()
            loss = F.cross_entropy(net(x[i:i + 128]), y[i:i + 128])
            loss.backward()
            opt.step()
    acc = (net(x[:512]).argmax(1) == y[:512]).float().mean().item()
    assert acc > 0.9, acc
