"""Keras' ``preprocessing`` package: ``image.ImageDataGenerator`` for real-time augmentation."""
from fastconv.preprocessing import image

__all__ = ["image"]
