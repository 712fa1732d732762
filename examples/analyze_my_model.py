"""Spectral analysis and evaluation of your own model, from Python: any nn.Module that takes
images in [0, 1]. Here a small network trained for a moment on specrobust's generated data
(whose classes live in the low frequencies); put your own model and test images in its place.

    python examples/analyze_my_model.py
"""

import torch
from torch import nn
from torch.nn import functional as F

import specrobust
from specrobust.data import load_dataset

dataset = load_dataset("synthetic:band=low,n_train=2000,n_test=100")
torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
    nn.Flatten(), nn.Linear(32 * 16, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for _ in range(150):  # a natural model: a few quick steps
    batch = torch.randint(len(dataset.train), (64,))
    loss = F.cross_entropy(model(dataset.train.as_float()[batch]), dataset.train.labels[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
model.eval()

images, labels = dataset.test.as_float(), dataset.test.labels
parts = specrobust.analyze(model, images, labels, parts="filter,spectra,kernels", eps=8 / 255)
low = parts["filter"]["lowpass"]
print("low-pass bandwidth:", low["bandwidths"])
print("clean accuracy    :", [f"{a:.2f}" for a in low["clean"]])
print("PGD-20 accuracy   :", [f"{a:.2f}" for a in low["pgd20"]])
shares = parts["spectra"]["perturbation_band_shares"]
print("PGD-20 perturbation energy by band:", {band: f"{v:.2f}" for band, v in shares.items()})
print(f"first-layer kernels, non-DC energy share: {parts['kernels']['high_frequency_share']:.2f}")

result = specrobust.evaluate(model, images, labels, attacks="clean,fgsm,pgd20", eps=8 / 255)
print({a["label"]: f"{a['accuracy']:.2f}" for a in result.as_dict()["attacks"]})
