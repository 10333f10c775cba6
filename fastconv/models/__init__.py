"""Keras' ``models``: ``Sequential``, ``Model``, ``Input``, ``load_model``."""
from fastconv.layers.base import Input
from fastconv.models.model import Model
from fastconv.models.saving import load_model, model_from_config
from fastconv.models.sequential import Sequential


def model_from_json(text):
    """A model (untrained) from ``model.to_json()``."""
    import json
    spec = json.loads(text)
    return model_from_config(spec["class_name"], spec["config"])


__all__ = ["Input", "Model", "Sequential", "load_model", "model_from_json"]
