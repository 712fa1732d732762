"""Small models trained inside the tests on the synthetic dataset (a few seconds on CPU)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from specrobust.data import DeviceLoader, load_dataset
from specrobust.models import create_model


def dataset_name(band: str = "low", n_train: int = 2000, seed: int = 0) -> str:
    return f"synthetic:band={band},n_train={n_train},n_test=500,seed={seed}"


def train_natural(band: str = "low", epochs: int = 4, n_train: int = 2000, seed: int = 0):
    """A cnn_small trained with plain cross-entropy; returns (model in eval mode, test split)."""
    torch.manual_seed(seed)
    dataset = load_dataset(dataset_name(band, n_train, seed))
    model = create_model("cnn_small", 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DeviceLoader(dataset.train, 64, shuffle=True, drop_last=True, seed=seed)
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
    return model.eval(), dataset.test


def accuracy(model, images, labels) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()
