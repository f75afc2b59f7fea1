import numpy as np
import pytest
from audio_server import audio_server, private_jack  # noqa: F401  (fixtures for the device tests)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
