"""The weights that ship in models/: the default every command uses, within the size limit,
and as accurate on freshly generated images as models/README.md says."""
import os

from deepinside import models
from deepinside.models.data import CLASSES, generate
from deepinside.models.loading import DEFAULT_PATH
from deepinside.models.data import EVALUATION_SEED, HELD_OUT_SEED, SANITY_SEED, TRAIN_SEED
from deepinside.models.train import accuracy

FRESH_SEED = 7
# models/README.md records 94.5% top-1 on 2,000 held-out images and 91.5% on these 200; on
# 200 images one standard error is 2 points, so below 88% the weights are not the ones
# documented. (The issue asks for 95% on both: not reached yet, see models/README.md.)
REQUIRED_ACCURACY = 0.88


def test_the_shipped_weights_are_the_default_and_small():
    assert os.path.getsize(DEFAULT_PATH) <= 20 * 2 ** 20
    model = models.load()
    assert model.classes == list(CLASSES) and (model.input_size, model.image_size) == (96, 112)


def test_the_shipped_weights_classify_fresh_images():
    assert FRESH_SEED not in (TRAIN_SEED, HELD_OUT_SEED, EVALUATION_SEED, SANITY_SEED)
    model = models.load()
    images, labels, _, _ = generate(200, FRESH_SEED)
    assert accuracy(model.net, images, labels, model.mean, model.std) >= REQUIRED_ACCURACY
