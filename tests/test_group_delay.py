"""chain_delay: one delay for every frequency, or None."""

import numpy as np
import pytest
from scipy import signal

from streamconv.dsp.group_delay import chain_delay, linear_phase_delay


@pytest.mark.parametrize("taps", [41, 40, 1023])
def test_linear_phase_designs_delay_by_half_their_length(taps):
    h = signal.firwin(taps, 0.2) if taps % 2 else signal.firwin(taps, 0.2, pass_zero=True)
    assert linear_phase_delay(h) == (taps - 1) / 2
    # The delay is where an impulse's response is centred: its group delay at every frequency.
    _, gd = signal.group_delay((h, [1.0]), w=[0.05, 0.1, 0.3])
    np.testing.assert_allclose(gd, (taps - 1) / 2, atol=1e-6)


def test_antisymmetric_padded_and_pure_delays():
    hilbert = signal.remez(31, [0.05, 0.45], [1], type="hilbert")
    assert linear_phase_delay(hilbert) == 15.0
    assert linear_phase_delay(np.r_[0, 0, 0, 1.0, 0, 0]) == 3.0
    assert linear_phase_delay(np.r_[0, 1.0, 2.0, 1.0, 0, 0, 0]) == 2.0
    assert linear_phase_delay(np.zeros(5)) is None
    assert linear_phase_delay(signal.minimum_phase(signal.firwin(41, 0.2))) is None


def test_a_chain_needs_one_delay_on_every_path():
    h = signal.firwin(21, 0.3)
    mimo = np.zeros((22, 2, 2))
    mimo[:21, 0, 0] = h
    mimo[:21, 1, 1] = -0.5 * h
    assert chain_delay(mimo) == 10.0
    mimo[1:, 1, 1] = h  # the right path one sample later: two delays
    assert chain_delay(mimo) is None
    assert chain_delay(np.stack([h, h], axis=1)) == 10.0
    assert chain_delay(np.r_[1.0]) == 0.0
