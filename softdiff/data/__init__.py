"""Image data sets as uint8 tensors, served as float batches in [-1, 1]."""

from .cifar10 import load_cifar10
from .datasets import DATASETS, ImageData, load_dataset, register_dataset
from .fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from .folder import load_image_folder
from .synthetic import synthetic_shapes

__all__ = [
    "ImageData",
    "load_dataset",
    "register_dataset",
    "DATASETS",
    "load_fashion_mnist",
    "FASHION_MNIST_DIR",
    "load_cifar10",
    "load_image_folder",
    "synthetic_shapes",
]
