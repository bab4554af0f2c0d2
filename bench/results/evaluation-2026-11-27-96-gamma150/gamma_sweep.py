"""GraphCut's pairwise weight (gamma) on validation images (seed 1, held-out; the evaluation uses seed 2)."""
import sys, time, json
import numpy as np
from deepinside import models
from deepinside.engine import keep_freed_memory
from deepinside.models.data import generate
from deepinside.viz.saliency import saliency_maps
from deepinside.viz.localise import localise_from_saliency, box_iou
keep_freed_memory()
model = models.load()
N = int(sys.argv[1])
data = []
for i in range(N):
    images, labels, masks, boxes = generate(1, 1, i)
    image = images[0].astype(np.float32)
    (m,), _, _ = saliency_maps(model, image, [int(labels[0])], crops=10, mode="backprop")
    data.append((image, m, tuple(boxes[0])))
print("maps done", flush=True)
for gamma in [float(g) for g in sys.argv[2:]]:
    t = time.time(); hits = []; sizes = []
    for image, m, true_box in data:
        r = localise_from_saliency(image, m, gamma=gamma)
        iou = box_iou(r.box, true_box); hits.append(iou >= 0.5)
        area = lambda b: (b[2]-b[0])*(b[3]-b[1])
        if iou < 0.5: sizes.append(area(r.box) / area(true_box))
    sizes = np.array(sizes)
    print(f"gamma {gamma:6.1f}: GT-known error {1 - np.mean(hits):.3f}  failures: box smaller than truth {np.mean(sizes < 1):.2f}, median area ratio {np.median(sizes):.2f}  {time.time()-t:.0f} s", flush=True)
