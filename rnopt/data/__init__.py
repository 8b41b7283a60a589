"""Datasets (bundled CIFAR-10 JPEGs, ImageFolder directories) and preprocessing."""
from rnopt.data.datasets import BUNDLED, ImageDataset, align_labels, bundled_overlap, load_dataset
from rnopt.data.preprocess import preprocess

__all__ = ["BUNDLED", "ImageDataset", "align_labels", "bundled_overlap", "load_dataset", "preprocess"]
