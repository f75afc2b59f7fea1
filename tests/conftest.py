import numpy as np
import pytest
from audio_server import audio_server, private_jack  # noqa: F401  (fixtures for the device tests)
from systemd_container import systemd_container  # noqa: F401  (a booted systemd, test_systemd)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _machine_caches_of_the_test_run(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's FFTW wisdom or calibrated cost model (a calibration
    saved there would change the plans later tests expect); each test starts with the default
    cost model. Tests that need a wisdom file point STREAMCONV_FFTW_WISDOM elsewhere."""
    from streamconv.dsp import costmodel

    caches = tmp_path_factory.getbasetemp() / "machine-caches"
    monkeypatch.setenv("STREAMCONV_FFTW_WISDOM", str(caches / "fftw-wisdom.json"))
    monkeypatch.setattr(costmodel, "_measured", {})
