import numpy as np
import pytest

from deepinside import engine


@pytest.fixture(autouse=True)
def numpy_backend_and_seed():
    engine.set_backend("numpy")
    engine.nn.manual_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(20131220)
