"""FFTW wisdom kept between runs: saved by ``filter --fft-measure``, loaded by every run."""

import json

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from streamconv import wisdom
from streamconv.cli import main
from streamconv.dsp import fftw


@pytest.fixture
def wisdom_file(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "wisdom.json"
    monkeypatch.setenv("STREAMCONV_FFTW_WISDOM", str(path))
    yield path
    fftw.measure_plans(False)


def test_default_location_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("STREAMCONV_FFTW_WISDOM", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert wisdom.wisdom_path() == tmp_path / "streamconv" / "fftw-wisdom.json"


def test_measured_plans_are_saved_and_load_back(wisdom_file):
    fftw.measure_plans(True)
    fftw.RealFFTPair(96, 2, 2, np.float32)  # a size nothing else here plans
    assert wisdom.save() == wisdom_file
    saved = json.loads(wisdom_file.read_text())
    assert set(saved) == {"double", "single", "long double"}
    assert "fftwf_wisdom" in saved["single"] and "codelet" in saved["single"]
    assert wisdom.load()


@pytest.mark.parametrize("content", ["", "not json", "{}", '{"double": 1}', "[1, 2]"])
def test_a_bad_wisdom_file_is_ignored(wisdom_file, content):
    wisdom_file.parent.mkdir()
    wisdom_file.write_text(content)
    assert wisdom.load() is False


def test_missing_wisdom_is_not_an_error(wisdom_file):
    assert wisdom.load() is False


def test_an_unwritable_cache_warns_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("STREAMCONV_FFTW_WISDOM", str(blocker / "sub" / "wisdom.json"))
    assert wisdom.save() is None
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "cannot save FFTW wisdom" in err
    assert err.count("\n") == 1


def test_filter_fft_measure_saves_wisdom_and_filters_exactly(tmp_path, rng, wisdom_file, capsys):
    x = rng.uniform(-0.4, 0.4, (5000, 2))
    h = rng.normal(size=77) / 10
    sf.write(tmp_path / "in.wav", x, 8000, subtype="DOUBLE")
    np.savetxt(tmp_path / "h.txt", h, fmt="%.17g")
    argv = ["filter", "-i", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav")]
    argv += ["--fir", str(tmp_path / "h.txt"), "--block", "1000", "--method", "ola"]
    assert main([*argv, "--fft-measure"]) == 0
    assert f"wisdom saved to {wisdom_file}" in capsys.readouterr().err
    assert wisdom_file.exists()
    measured, _ = sf.read(tmp_path / "out.wav")
    assert main(argv) == 0  # a plain run now plans from the saved wisdom
    planned, _ = sf.read(tmp_path / "out.wav")
    ref = scipy.signal.convolve(x, h[:, None])[: len(x)]
    for y in (measured, planned):
        np.testing.assert_allclose(y, ref, atol=1e-10 * np.abs(ref).max())


def test_cost_model_is_kept_beside_the_wisdom(wisdom_file):
    from streamconv.dsp import costmodel

    model = costmodel.CostModel(1e-10, 2e-10, 3e-7, 4e-11, 5e-7, source="calibrated test")
    assert wisdom.save_costs({"numpy": model}) == wisdom_file.with_name("cost-model.json")
    assert costmodel.current("numpy") == costmodel.DEFAULTS["numpy"]
    assert wisdom.load_costs()
    assert costmodel.current("numpy") == model
    assert costmodel.current("compiled") == costmodel.DEFAULTS["compiled"]


@pytest.mark.parametrize("content", ["", "[]", '{"numpy": {"fft": -1}}', '{"numpy": 3}'])
def test_a_bad_cost_model_file_is_ignored(wisdom_file, content):
    from streamconv.dsp import costmodel

    wisdom_file.parent.mkdir()
    wisdom_file.with_name("cost-model.json").write_text(content)
    assert not wisdom.load_costs()
    assert costmodel.current("numpy") == costmodel.DEFAULTS["numpy"]
