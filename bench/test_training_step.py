"""One training step of the shapes net as `deepinside train` makes it (the BatchNorm twin in
training mode: forward, cross-entropy, backward, SGD update with momentum and weight decay;
batch 64 of 96x96 images, dropout on): this engine on the numpy backend against its PyTorch
twin with torch.optim.SGD, on the CPU in the same run. This step is what the training
budget is made of. Run:  pytest bench
"""
import numpy as np
import pytest
import torch

from deepinside import engine
from deepinside.engine import functional as F
from deepinside.models.train import default_net
from torch_reference import torch_twin

BATCH = 64  # deepinside train's default


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((BATCH, 3, 96, 96)).astype(np.float32), rng.integers(0, 10, BATCH)


def test_training_step_ours(benchmark, record_median, batch):
    engine.set_backend("numpy")
    net = default_net(seed=0).train()
    optimiser = engine.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-3)
    images, labels = batch
    losses = []

    def step():
        loss = F.cross_entropy(net(engine.Tensor(images)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.data))

    benchmark.group = "training-step-shapes-net"
    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
    # Steps on one fixed batch at a small learning rate must lower its loss.
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    record_median(benchmark, "training-step-shapes-net", "ours")


def test_training_step_torch(benchmark, record_median, batch):
    engine.set_backend("numpy")
    twin = torch_twin(default_net(seed=0), torch.float32).train()
    optimiser = torch.optim.SGD(twin.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-3)
    images, labels = (torch.from_numpy(a) for a in batch)

    def step():
        loss = torch.nn.functional.cross_entropy(twin(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    benchmark.group = "training-step-shapes-net"
    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
    record_median(benchmark, "training-step-shapes-net", "torch")
