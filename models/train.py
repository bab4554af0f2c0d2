"""Training the shipped model: a scaled CNN-F on the generated shapes, with the engine.

The net trained is the shipped pattern with a BatchNorm2d after every convolution; the
BatchNorms are folded into the convolutions before saving, so the file holds the paper's
conv / ReLU / max-pool / fully connected pattern. SGD with momentum and weight decay, linear
warm-up and cosine decay, dropout, random 96x96 crops of the 112x112 images and horizontal
flips. Reproducible from its seed: the data, the initial weights, the order and every
jitter come from it.
"""
import time

import numpy as np

from .. import engine
from ..engine import functional as F
from .architectures import shapes_net
from .data import CLASSES, HELD_OUT_SEED, IMAGE_SIZE, INPUT_SIZE, TRAIN_SEED, generate
from .weights import save


def default_net(seed=0, dropout=0.1, batchnorm=True):
    """The shipped architecture, with a BatchNorm2d after each convolution unless told
    otherwise (the net that is trained; `nn.fold_batchnorm` makes it the shipped one).
    He-initialised (weights N(0, 2 / fan_in), biases 0, BatchNorm scale 1 and shift 0): with
    PyTorch's default initialisation the eight layers shrink the signal so much that SGD
    barely moves for the first epochs. The last layer starts at std 0.01 so that the
    first scores are near uniform (loss ln 10) instead of confidently wrong."""
    engine.nn.manual_seed(seed)
    net = shapes_net(num_classes=len(CLASSES), input_size=INPUT_SIZE, dropout=dropout, batchnorm=batchnorm)
    rng = np.random.default_rng(seed)
    weighted = [layer for layer in net if isinstance(layer, (engine.nn.Conv2d, engine.nn.Linear))]
    for layer in weighted:
        shape = layer.weight.shape
        weight = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        if layer is weighted[-1]:
            weight *= 0.01 / weight.std()
        layer.weight.data = layer.weight.backend.asarray(weight.astype(np.float32))
        if layer.bias is not None:
            layer.bias.data = layer.bias.backend.asarray(np.zeros(layer.bias.shape, np.float32))
    return net


def pixel_statistics(images):
    """Per-channel mean and standard deviation of uint8 RGB images, exact: from each
    channel's histogram, summed in integers. (A float32 mean over the hundreds of millions
    of pixels stalls once the running sum outgrows float32's precision: the models trained
    before this fix stored the same wrong mean, 7-11, for all three channels.)"""
    counts = np.zeros((3, 256), np.int64)
    for start in range(0, len(images), 1000):
        pixels = images[start : start + 1000].reshape(-1, 3)
        for channel in range(3):
            counts[channel] += np.bincount(pixels[:, channel], minlength=256)
    values = np.arange(256, dtype=np.float64)
    total = counts.sum(axis=1)
    mean = counts @ values / total
    variance = counts @ values ** 2 / total - mean ** 2
    return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def centre_crops(images):
    offset = (IMAGE_SIZE - INPUT_SIZE) // 2
    return images[:, offset : offset + INPUT_SIZE, offset : offset + INPUT_SIZE]


def to_batch(images, mean, std):
    return ((images.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()


def accuracy(net, images, labels, mean, std, batch_size=250):
    net.eval()
    correct = 0
    with engine.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_batch(centre_crops(images[start : start + batch_size]), mean, std)
            scores = engine.to_numpy(net(engine.Tensor(x, backend=net.backend)).data)
            correct += int((scores.argmax(axis=1) == labels[start : start + batch_size]).sum())
    return correct / len(images)


def jittered_batch(rng, images, mean, std):
    """Random crops and flips. (Zeroing a random rectangle as well, in half of the images,
    slowed learning in the recipe search: on a small object it wipes out the object and
    leaves its label; models/README.md.)"""
    count = len(images)
    tops, lefts = rng.integers(0, IMAGE_SIZE - INPUT_SIZE + 1, (2, count))
    crops = np.stack([images[i, t : t + INPUT_SIZE, l : l + INPUT_SIZE] for i, (t, l) in enumerate(zip(tops, lefts))])
    flip = rng.random(count) < 0.5
    crops[flip] = crops[flip, :, ::-1]
    return to_batch(crops, mean, std)


def learning_rate(peak, step, total_steps, warmup_steps):
    """Linear warm-up to `peak`, then cosine decay to zero (without the warm-up, a high
    learning rate from the first step throws the eight-layer net off)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * 0.5 * (1 + np.cos(np.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))


def train(out, images=50000, epochs=39, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4, dropout=0.1,
          warmup_steps=300, seed=0, held_out=2000, log=print, progress=True):
    """Trains the default network and writes it to `out`; returns the held-out accuracy."""
    from tqdm import tqdm

    start = time.perf_counter()
    train_images, train_labels, _, _ = generate(images, TRAIN_SEED + 1000 * seed)
    test_images, test_labels, _, _ = generate(held_out, HELD_OUT_SEED)
    mean, std = pixel_statistics(train_images)
    log(f"generated {images} training and {held_out} held-out images in {time.perf_counter() - start:.0f} s")
    net = default_net(seed, dropout)
    optimiser = engine.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-images // batch_size)
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(images)
        losses, correct = [], 0
        epoch_start = time.perf_counter()
        for begin in tqdm(range(0, images, batch_size), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                          leave=False, unit="batch"):
            optimiser.lr = learning_rate(lr, epoch * steps_per_epoch + begin // batch_size,
                                         epochs * steps_per_epoch, warmup_steps)
            chosen = order[begin : begin + batch_size]
            x = engine.Tensor(jittered_batch(rng, train_images[chosen], mean, std), backend=net.backend)
            scores = net(x)
            loss = F.cross_entropy(scores, train_labels[chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(engine.to_numpy(loss.data)))
            correct += int((engine.to_numpy(scores.data).argmax(axis=1) == train_labels[chosen]).sum())
        held_out_accuracy = accuracy(net, test_images, test_labels, mean, std)
        log(f"epoch {epoch + 1:2d}/{epochs}  lr {optimiser.lr:.4f}  loss {np.mean(losses):.4f}  "
            f"train accuracy {correct / images:.4f}  held-out accuracy {held_out_accuracy:.4f}  "
            f"{time.perf_counter() - epoch_start:.0f} s")
    # The shipped pattern: every BatchNorm folded into its convolution (outputs unchanged).
    save(out, engine.nn.fold_batchnorm(net), classes=list(CLASSES), input_size=INPUT_SIZE, image_size=IMAGE_SIZE,
         mean=mean, std=std)
    log(f"wrote {out}: held-out accuracy {held_out_accuracy:.4f} on {held_out} images, "
        f"{time.perf_counter() - start:.0f} s in all")
    return held_out_accuracy
