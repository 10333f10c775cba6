"""``Sequential``: a stack of layers, built as soon as the first layer's input shape is known
(from ``input_shape=``, an ``Input`` or the first data it sees)."""
from fastconv.layers.base import Input, InputLayer, Layer, SymbolicTensor
from fastconv.models.model import Model


class Sequential(Model):
    def __init__(self, layers=None, name=None):
        super().__init__(name=name)
        self._stack, self._input_tensor = [], None
        self._nodes = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        """The stacked layers (without the input layer, as in Keras)."""
        return list(self._stack)

    def add(self, layer):
        """Append a layer (or set the input with ``Input(shape)``)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            if self._stack or self._input_tensor is not None:
                raise ValueError("an Input can only start a Sequential model")
            self._input_tensor = layer
            return
        if isinstance(layer, InputLayer):
            return self.add(Input(layer.sample_shape, name=layer.name))
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a layer, got {type(layer).__name__}")
        if self._input_tensor is None and not self._stack and layer.input_shape_hint:
            self._input_tensor = Input(layer.input_shape_hint)
        self._stack.append(layer)
        if self._input_tensor is not None:
            self._rebuild()

    def pop(self):
        if not self._stack:
            raise TypeError("there are no layers in the model")
        self._stack.pop()
        self._rebuild() if self._stack else setattr(self, "_nodes", None)

    def _rebuild(self):
        t = self._input_tensor
        for layer in self._stack:
            t = layer(t)
        self._set_graph(self._input_tensor, t)
        if self.loss is not None:
            self._check_fusion()

    def build(self, input_shape):
        """Build for samples of ``input_shape`` (no batch axis)."""
        self._input_tensor = Input(tuple(input_shape))
        self._rebuild()

    def _ensure_built(self, input_shape):
        if self.built:
            return
        if not self._stack:
            raise ValueError("the model has no layers")
        self.build(input_shape)
