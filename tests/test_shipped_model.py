"""The weights that ship in models/: the default every command uses, within the size limit,
and as accurate on freshly generated images as models/README.md says."""
import os

from deepinside import models
from deepinside.models.data import CLASSES, generate
from deepinside.models.loading import DEFAULT_PATH
from deepinside.models.data import EVALUATION_SEED, HELD_OUT_SEED, SANITY_SEED, TRAIN_SEED
from deepinside.models.train import accuracy

FRESH_SEED = 7
# The issue asks for 95% top-1 on 200 fresh images: the shipped weights get 190 of 200 (and
# 96.1% on the 2,000 held-out images, models/README.md). Exactly at the bar, but not on a
# knife edge: the closest correct call wins by 0.06 in the logits, where a different BLAS
# summation order moves them by about 1e-5.
REQUIRED_ACCURACY = 0.95


def test_the_shipped_weights_are_the_default_and_small():
    assert os.path.getsize(DEFAULT_PATH) <= 20 * 2 ** 20
    model = models.load()
    assert model.classes == list(CLASSES) and (model.input_size, model.image_size) == (96, 112)


def test_the_shipped_weights_classify_fresh_images():
    assert FRESH_SEED not in (TRAIN_SEED, HELD_OUT_SEED, EVALUATION_SEED, SANITY_SEED)
    model = models.load()
    images, labels, _, _ = generate(200, FRESH_SEED)
    assert accuracy(model.net, images, labels, model.mean, model.std) >= REQUIRED_ACCURACY
