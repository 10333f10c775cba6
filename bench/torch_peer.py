"""The same network in plain PyTorch (NCHW), for whole-model comparisons: a translation of a
fastconv model's graph (Sequential or functional), layer by layer, into an ``nn.Module`` that
runs the same graph. Paddings are resolved as fastconv resolves them (Keras' 'same' may pad
one more cell at the bottom/right); softmax is left to ``cross_entropy``. Weights are PyTorch's
own: the translation is for speed, not for equal outputs."""
import torch
from torch import nn
from torch.nn import functional as F

from fastconv import layers as L
from fastconv._shapes import resolve_padding

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _activation(name):
    return [] if name in ("linear", "softmax") else [_ACTIVATIONS[name]()]


class _Pad(nn.Module):
    """Pad height and width by ``((top, bottom), (left, right))`` with ``value``."""

    def __init__(self, pads, value=0.0):
        super().__init__()
        (t, b), (l, r) = pads
        self.pads, self.value = (l, r, t, b), value

    def forward(self, x):
        return F.pad(x, self.pads, value=self.value)


def _resolve_padding(layer, size, value=0.0):
    """``(padding, front)``: ``layer``'s padding for inputs of ``size``, as the symmetric
    padding of the PyTorch module, or as a pad module ``front`` when it is uneven."""
    window = getattr(layer, "kernel_size", None) or layer.pool_size
    pads = resolve_padding(layer.padding, size, window, layer.strides,
                           getattr(layer, "dilation_rate", (1, 1)))
    if all(a == b for a, b in pads):
        return tuple(a for a, _ in pads), []
    return 0, [_Pad(pads, value)]


def _conv(layer, c_in, c_out, size, groups, bias):
    padding, front = _resolve_padding(layer, size)
    return front + [nn.Conv2d(c_in, c_out, layer.kernel_size, layer.strides, padding,
                              layer.dilation_rate, groups, bias)]


def _pool(layer, size):
    if isinstance(layer, L.MaxPooling2D):
        padding, front = _resolve_padding(layer, size, float("-inf"))
        return front + [nn.MaxPool2d(layer.pool_size, layer.strides, padding)]
    padding, front = _resolve_padding(layer, size)
    if front:
        raise NotImplementedError("average pooling with uneven 'same' padding has no "
                                  "PyTorch translation here")
    return [nn.AvgPool2d(layer.pool_size, layer.strides, padding, count_include_pad=False)]


class _Sum(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x, y):
        return x + self.scale * y


class _Cat(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, self.dim)


class _GlobalPool(nn.Module):
    def __init__(self, reduce):
        super().__init__()
        self.reduce = reduce

    def forward(self, x):
        return self.reduce(x, dim=(2, 3))


def _module(layer, in_shapes):
    """The PyTorch module for ``layer`` taking inputs of ``in_shapes`` (fastconv's, no batch
    axis, channels_last)."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotImplementedError("only channels_last models are translated")
    shape = in_shapes[0]
    if isinstance(layer, (L.Add, L.ScaledAdd)):
        if len(in_shapes) != 2:
            raise NotImplementedError("only two-input additions are translated")
        return _Sum(getattr(layer, "scale", 1.0))
    if isinstance(layer, L.Concatenate):
        rank = len(shape) + 1
        axis = layer.axis % rank
        return _Cat((0, 2, 3, 1)[axis] if rank == 4 else axis)     # NHWC axis → NCHW
    if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D)):
        c, size = shape[-1], shape[:2]
        if isinstance(layer, L.SeparableConv2D):
            mid = c * layer.depth_multiplier
            mods = _conv(layer, c, mid, size, c, False) + [nn.Conv2d(mid, layer.filters, 1,
                                                                     bias=layer.use_bias)]
        elif isinstance(layer, L.DepthwiseConv2D):
            mods = _conv(layer, c, c * layer.depth_multiplier, size, c, layer.use_bias)
        else:
            mods = _conv(layer, c, layer.filters, size, layer.groups, layer.use_bias)
        return nn.Sequential(*mods, *_activation(layer.activation.name))
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        return nn.Sequential(*_pool(layer, shape[:2]))
    if isinstance(layer, L.ZeroPadding2D):
        return _Pad(layer.padding)
    if isinstance(layer, L.BatchNormalization):
        if layer.axis % (len(shape) + 1) != len(shape):
            raise NotImplementedError("BatchNormalization is translated on the last axis only")
        norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return norm(shape[-1], eps=layer.epsilon, momentum=1 - layer.momentum)
    if isinstance(layer, L.Dense):
        if len(shape) != 1:
            raise NotImplementedError("Dense is translated on flat inputs only")
        return nn.Sequential(nn.Linear(shape[0], layer.units, layer.use_bias),
                             *_activation(layer.activation.name))
    if isinstance(layer, L.Activation):
        return nn.Sequential(*_activation(layer.activation.name))
    if isinstance(layer, L.GlobalAveragePooling2D):
        return _GlobalPool(torch.mean)
    if isinstance(layer, L.GlobalMaxPooling2D):
        return _GlobalPool(torch.amax)
    if isinstance(layer, L.Dropout):
        return nn.Dropout(layer.rate)
    if isinstance(layer, L.Flatten):
        return nn.Flatten()
    raise NotImplementedError(f"no PyTorch translation for {type(layer).__name__}")


class Graph(nn.Module):
    """A fastconv model's graph in PyTorch: one module per layer (shared layers stay shared),
    run in the model's order; each intermediate is dropped after its last use."""

    def __init__(self, model):
        super().__init__()
        self.layers = nn.ModuleDict()
        slot = {id(model._nodes[0]): 0}
        self.steps = []                  # (layer name, input slots)
        for t in model._nodes[1:]:
            if t.layer.name not in self.layers:
                self.layers[t.layer.name] = _module(t.layer, [i.shape for i in t.inputs])
            self.steps.append((t.layer.name, [slot[id(i)] for i in t.inputs]))
            slot[id(t)] = len(slot)
        last_use = {s: k for k, (_, inputs) in enumerate(self.steps) for s in inputs}
        self.frees = [[s for s in set(inputs) if last_use[s] == k]
                      for k, (_, inputs) in enumerate(self.steps)]

    def forward(self, x):
        values = {0: x}
        for k, ((name, inputs), frees) in enumerate(zip(self.steps, self.frees), start=1):
            values[k] = self.layers[name](*(values[s] for s in inputs))
            for s in frees:
                del values[s]
        return values[len(self.steps)]


def translate(model):
    """An ``nn.Module`` with the architecture of the fastconv ``model`` (Sequential or
    functional), taking NCHW batches."""
    return Graph(model)


def train_step(net, optimizer):
    """A closure doing one forward + backward + update on ``(x, labels)``."""
    def step(x, labels):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(x), labels)
        loss.backward()
        optimizer.step()
        return loss
    return step


def adadelta(net):
    """Keras 2.3's Adadelta defaults in PyTorch."""
    return torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.95, eps=1e-7)
