"""Where a trained model errs on the 2,000 held-out images (seed 1, centre crops): accuracy,
confusion matrix (markdown, rows the true class), accuracy by object size and by how much of
the object the centre crop shows.

    python bench/model_errors.py [WEIGHTS]      (default: the shipped model)
"""
import sys

import numpy as np

from deepinside import engine, models
from deepinside.models.data import CLASSES, HELD_OUT_SEED, generate
from deepinside.models.train import centre_crops, to_batch

model = models.load(sys.argv[1] if len(sys.argv) > 1 else None)
net = model.net.eval()
images, labels, masks, boxes = generate(2000, HELD_OUT_SEED)
with engine.no_grad():
    scores = np.concatenate([engine.to_numpy(net(engine.Tensor(to_batch(centre_crops(images[i : i + 250]), model.mean,
                                                                         model.std))).data)
                             for i in range(0, len(images), 250)])
right = scores.argmax(axis=1) == labels
print(f"accuracy {right.mean():.4f} on {len(labels)} images\n")
confusion = np.zeros((len(CLASSES), len(CLASSES)), int)
np.add.at(confusion, (labels, scores.argmax(axis=1)), 1)
print("| true \\ predicted | " + " | ".join(CLASSES) + " |")
print("| --- |" + " ---: |" * len(CLASSES))
for i, name in enumerate(CLASSES):
    print(f"| {name} | " + " | ".join(f"**{v}**" if j == i else str(v) for j, v in enumerate(confusion[i])) + " |")
side = np.sqrt(masks.sum(axis=(1, 2)))
print("\nby object size (square root of the mask's area):")
for low, high in [(0, 20), (20, 30), (30, 40), (40, 200)]:
    chosen = (side >= low) & (side < high)
    print(f"  {low}-{high} px: {right[chosen].mean():.3f} of {chosen.sum()}")
crop = np.zeros(masks.shape[1:], bool)
crop[8:104, 8:104] = True
shown = (masks & crop).sum(axis=(1, 2)) / masks.sum(axis=(1, 2))
print("by the fraction of the object inside the centre crop:")
for low, high in [(0, 0.8), (0.8, 0.95), (0.95, 1.01)]:
    chosen = (shown >= low) & (shown < high)
    print(f"  {low}-{min(high, 1)}: {right[chosen].mean():.3f} of {chosen.sum()}")
