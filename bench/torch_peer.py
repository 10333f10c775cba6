"""The same network in plain PyTorch (NCHW), for whole-model comparisons: a translation of a
fastconv Sequential model, layer by layer (softmax is left to ``cross_entropy``)."""
import torch
from torch import nn

from fastconv import layers as L

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _activation(name):
    return [] if name in ("linear", "softmax") else [_ACTIVATIONS[name]()]


def translate(model):
    """An ``nn.Sequential`` with the architecture of the fastconv Sequential ``model``."""
    mods, shape = [], model.input_shape[1:]
    for layer in model.layers:
        c = shape[-1] if len(shape) == 3 else shape[0]
        if isinstance(layer, L.Conv2D):
            pad = "same" if layer.padding == "same" else 0
            mods += [nn.Conv2d(c, layer.filters, layer.kernel_size, layer.strides, pad,
                               groups=layer.groups)] + _activation(layer.activation.name)
        elif isinstance(layer, L.MaxPooling2D):
            mods.append(nn.MaxPool2d(layer.pool_size, layer.strides))
        elif isinstance(layer, L.AveragePooling2D):
            mods.append(nn.AvgPool2d(layer.pool_size, layer.strides))
        elif isinstance(layer, L.Dropout):
            mods.append(nn.Dropout(layer.rate))
        elif isinstance(layer, L.Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, L.Dense):
            mods += [nn.Linear(shape[-1], layer.units)] + _activation(layer.activation.name)
        else:
            raise NotImplementedError(f"no PyTorch translation for {type(layer).__name__}")
        shape = layer.compute_output_shape(shape)
    return nn.Sequential(*mods)


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
