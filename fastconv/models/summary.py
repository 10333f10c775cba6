"""``model.summary()``: Keras 2's table (same columns, widths and parameter counts) with one
extra column, the forward FLOPs per sample (a multiply-add counts two)."""
from collections import namedtuple

from fastconv.layers.base import InputLayer

Row = namedtuple("Row", "name kind shape params flops inbound")


def layer_rows(model):
    """One row per graph node, in execution order (the input layer only for functional
    models, as Keras prints it)."""
    rows, counted = [], set()
    sequential = type(model).__name__ == "Sequential"
    for t in model._nodes:
        layer = t.layer
        if isinstance(layer, InputLayer):
            if not sequential:
                rows.append(Row(layer.name, "InputLayer", f"[(None, {_dims(t.shape)})]", 0, 0, []))
            continue
        first = id(layer) not in counted
        counted.add(id(layer))
        in_shape = [i.shape for i in t.inputs] if len(t.inputs) > 1 else t.inputs[0].shape
        rows.append(Row(layer.name, type(layer).__name__, f"(None, {_dims(t.shape)})",
                        layer.count_params() if first else 0, layer.flops(in_shape, t.shape),
                        [i.layer.name for i in t.inputs]))
    return rows


def _dims(shape):
    return ", ".join(map(str, shape))


def _si(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _line(fields, positions):
    line = ""
    for field, stop in zip(fields, positions):
        if line:
            line = line[:-1] + " "
        line = (line + str(field))[:stop]
        line += " " * (stop - len(line))
    return line


def summary(model, line_length=None, print_fn=print):
    if not model.built:
        raise ValueError("this model is not built yet: give the first layer an input_shape "
                         "or call it on data first")
    rows = layer_rows(model)
    sequential = type(model).__name__ == "Sequential"
    width = line_length or (65 if sequential else 98)
    fractions = [.45, .85, 1.] if sequential else [.33, .55, .67, 1.]
    positions = [int(width * f) for f in fractions]
    positions.append(positions[-1] + 12)
    header = ["Layer (type)", "Output Shape", "Param #"] + ([] if sequential else
                                                          ["Connected to"]) + ["FLOPs"]
    total = positions[-1]
    print_fn(f'Model: "{model.name}"')
    print_fn("_" * total)
    print_fn(_line(header, positions))
    print_fn("=" * total)
    for k, row in enumerate(rows):
        fields = [f"{row.name} ({row.kind})", row.shape, row.params]
        connected = row.inbound or [""]
        if not sequential:
            fields.append(connected[0])
        print_fn(_line(fields + [_si(row.flops)], positions))
        for extra in ([] if sequential else connected[1:]):
            print_fn(_line(["", "", "", extra, ""], positions))
        print_fn(("=" if k == len(rows) - 1 else "_") * total)
    trainable = sum(w.value.size for w in model.trainable_weights)
    flops = sum(r.flops for r in rows)
    print_fn(f"Total params: {model.count_params():,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {model.count_params() - trainable:,}")
    print_fn(f"Forward FLOPs per sample: {_si(flops)} ({_si(flops // 2)} multiply-adds)")
    print_fn("_" * total)
