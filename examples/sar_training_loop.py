"""SAR added to a plain PyTorch adversarial-training loop: the only specrobust lines are the
PGD attack and SARLoss. Runs in seconds on a CPU on specrobust's generated data; pass another
dataset name (e.g. fashion-mnist) as the first argument for real data.

    python examples/sar_training_loop.py [DATASET] [EPOCHS]
"""

import sys

import torch
from torch import nn
from torch.nn import functional as F

import specrobust
from specrobust.data import load_dataset

dataset = load_dataset(sys.argv[1] if len(sys.argv) > 1 else "synthetic:n_train=1024,n_test=200")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
channels = dataset.train.images.shape[1]
eps, alpha, steps = 8 / 255, 2 / 255, 5

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
    nn.Flatten(), nn.Linear(32 * 16, len(dataset.class_names)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
sar = specrobust.SARLoss(lam=0.1)  # the paper's lambda

images, labels = dataset.train.as_float(), dataset.train.labels
for epoch in range(epochs):
    order = torch.randperm(len(images))
    for start in range(0, len(images), 128):
        x, y = images[order[start:start + 128]], labels[order[start:start + 128]]
        x_adv = specrobust.pgd(model, x, y, eps, alpha, steps, keep_best=False)  # eval mode inside
        model.train()
        adv_logits, clean_logits = model(x_adv), model(x)
        loss = F.cross_entropy(adv_logits, y) + sar(clean_logits, adv_logits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: last batch loss {loss.item():.3f} (SAR term "
          f"{sar(clean_logits, adv_logits).item():.3f})")

result = specrobust.evaluate(model, dataset.test.as_float()[:200], dataset.test.labels[:200],
                             attacks="clean,pgd20", eps=eps, checks=False)
print(f"clean {result.accuracy('clean'):.1%}, PGD-20 {result.accuracy('pgd20'):.1%} "
      f"on 200 test images")
