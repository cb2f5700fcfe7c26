"""Image data sets as uint8 tensors, served as float batches in [-1, 1]."""

from .datasets import DATASETS, ImageData, load_dataset
from .fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from .synthetic import synthetic_shapes

__all__ = ["ImageData", "load_dataset", "DATASETS", "load_fashion_mnist", "FASHION_MNIST_DIR", "synthetic_shapes"]
