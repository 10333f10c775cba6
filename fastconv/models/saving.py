"""Saving without pickle: one ``.npz`` file of arrays plus a JSON header (``__fastconv__``).

- ``save_weights`` / ``load_weights``: the weights in model order, with names and shapes,
  so a file from another architecture is refused with the first mismatch named;
- ``save`` / ``load_model``: the architecture (layer configs and graph) and the compile
  settings as well;
- ``save_checkpoint`` / ``load_checkpoint`` (used by ``BackupAndRestore``): also optimizer
  slots, random generator states, the epoch and the history, to resume exactly.

Files are written to a temporary name and renamed, so an interrupted save never leaves a
half-written file. Any suffix is accepted (Keras code saving to ``*.h5`` gets this format).
"""
import json
import os
import zipfile

import numpy as np

from fastconv import losses, optimizers
from fastconv._arrays import to_numpy
from fastconv.layers import LAYERS
from fastconv.layers.base import InputLayer

FORMAT_VERSION = 1


def _write(path, header, arrays):
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, __fastconv__=np.array(json.dumps(header)), **arrays)
    os.replace(tmp, path)


def _read(path, kinds):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["__fastconv__"]))
            arrays = {k: data[k] for k in data.files if k != "__fastconv__"}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable fastconv file ({e})") from None
    if header.get("kind") not in kinds:
        raise ValueError(f"{path} holds {header.get('kind')!r}, expected one of {kinds}")
    if header.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer fastconv (format "
                         f"{header['version']})")
    return header, arrays


def _weights_part(model):
    weights = model.weights
    header = [{"name": w.name, "shape": list(w.value.shape)} for w in weights]
    return header, {f"w{i}": w.numpy() for i, w in enumerate(weights)}


def _set_weights(model, header, arrays, path):
    if not model.built:
        raise ValueError("build the model (give it an input shape) before loading weights")
    weights, saved = model.weights, header["weights"]
    if len(saved) != len(weights):
        raise ValueError(f"{path} holds {len(saved)} weight arrays but the model has "
                         f"{len(weights)}: it was saved from another architecture")
    for i, (w, s) in enumerate(zip(weights, saved)):
        if tuple(s["shape"]) != w.value.shape:
            raise ValueError(f"weight {i} ({w.name}) has shape {w.value.shape} in the model but "
                             f"{tuple(s['shape'])} in {path} (saved as {s['name']}): another "
                             f"architecture")
    model.set_weights([arrays[f"w{i}"] for i in range(len(weights))])


def save_weights(model, path):
    names, arrays = _weights_part(model)
    _write(path, {"kind": "weights", "version": FORMAT_VERSION, "weights": names}, arrays)


def load_weights(model, path):
    header, arrays = _read(path, ("weights", "model", "checkpoint"))
    _set_weights(model, header, arrays, path)


# --------------------------------------------------------------------- architecture
def model_config(model):
    """The layers (Keras-style ``class_name`` + ``config``) and the graph as node links."""
    nodes = model._nodes
    layers, index = [], {}
    for t in nodes:
        if id(t.layer) not in index:
            index[id(t.layer)] = len(layers)
            layers.append({"class_name": type(t.layer).__name__, "config": t.layer.get_config()})
    position = {id(t): k for k, t in enumerate(nodes)}
    return {"name": model.name, "layers": layers,
            "nodes": [[index[id(t.layer)], [position[id(i)] for i in t.inputs]] for t in nodes]}


def model_from_config(class_name, config):
    from fastconv.models import Model, Sequential
    from fastconv.layers.base import SymbolicTensor
    try:
        layers = [LAYERS[spec["class_name"]].from_config(spec["config"])
                  for spec in config["layers"]]
    except KeyError as e:
        raise ValueError(f"unknown layer class {e} in the model config") from None
    if class_name == "Sequential":
        model = Sequential(name=config["name"])
        for layer in layers:
            model.add(layer)
        return model
    tensors = []
    for layer_index, inbound in config["nodes"]:
        layer = layers[layer_index]
        if isinstance(layer, InputLayer):
            tensors.append(SymbolicTensor(layer.sample_shape, layer, []))
        else:
            ins = [tensors[i] for i in inbound]
            tensors.append(layer(ins if len(ins) > 1 else ins[0]))
    return Model(tensors[0], tensors[-1], name=config["name"])


def _compile_part(model):
    if model.loss is None:
        return None
    return {"loss": model.loss.get_config(), "optimizer": model.optimizer.get_config(),
            "metrics": [key for key, _ in model.compiled_metrics]}


def save_model(model, path, include_optimizer=True):
    if not model.built:
        raise ValueError("build the model before saving it")
    names, arrays = _weights_part(model)
    header = {"kind": "model", "version": FORMAT_VERSION, "class_name": type(model).__name__,
              "config": model_config(model), "weights": names,
              "compile": _compile_part(model) if include_optimizer else None}
    _write(path, header, arrays)


def load_model(path, compile=True):
    """A model saved by ``model.save``, compiled as it was when ``compile``."""
    header, arrays = _read(path, ("model",))
    model = model_from_config(header["class_name"], header["config"])
    _set_weights(model, header, arrays, path)
    settings = header.get("compile")
    if compile and settings:
        model.compile(optimizer=optimizers.get(settings["optimizer"]),
                      loss=losses.get(settings["loss"]), metrics=settings["metrics"])
    return model


# --------------------------------------------------------------------- resumable checkpoints
def _generators(model):
    gens = {layer.name: layer._rng for layer in model.layers if layer._rng is not None}
    if model._shuffle_rng is not None:
        gens["__shuffle__"] = model._shuffle_rng
    return gens


def save_checkpoint(model, path, epoch, history):
    names, arrays = _weights_part(model)
    arrays.update({f"opt/{k}": to_numpy(v) for k, v in model.optimizer.get_state().items()})
    header = {"kind": "checkpoint", "version": FORMAT_VERSION, "weights": names,
              "epoch": epoch, "history": history,
              "learning_rate": model.optimizer.learning_rate,
              "generators": {k: g.bit_generator.state for k, g in _generators(model).items()}}
    _write(path, header, arrays)


def load_checkpoint(model, path):
    """Restore a checkpoint into ``model``; returns ``(finished epochs, history dict)``."""
    header, arrays = _read(path, ("checkpoint",))
    _set_weights(model, header, arrays, path)
    model.optimizer.set_state({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")},
                              model.trainable_weights)
    model.optimizer.learning_rate = header["learning_rate"]
    if "__shuffle__" in header["generators"] and model._shuffle_rng is None:
        from fastconv import _random
        model._shuffle_rng = _random.generator()
    for name, gen in _generators(model).items():
        if name in header["generators"]:
            gen.bit_generator.state = header["generators"][name]
    return header["epoch"], header["history"]
