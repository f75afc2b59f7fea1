"""FIR design: filter designers, response analysis and chain algebra.

Three modules, one job each, re-exported here so ``from streamconv.dsp import design`` and
``design.lowpass(...)`` keep working:

- :mod:`~streamconv.dsp.design.designers`: pure functions from a filter spec to taps
  (:func:`lowpass`, ..., :func:`design` by type name, :func:`design_bands`).
- :mod:`~streamconv.dsp.design.response`: what a set of taps does (:func:`frequency_response`,
  :func:`analyze`).
- :mod:`~streamconv.dsp.design.chain`: a chain of filters and channel mixes collapsed into one
  ``(L, Cin, Cout)`` MIMO FIR (:func:`identity`, :func:`apply_filter`, :func:`apply_mix`,
  :func:`apply_mimo`, :func:`compact_taps`).
"""

from streamconv.dsp.design.chain import (
    apply_filter,
    apply_mimo,
    apply_mix,
    compact_taps,
    identity,
)
from streamconv.dsp.design.designers import (
    DESIGNERS,
    WINDOW_TRANSITION,
    bandpass,
    bandstop,
    delay,
    design,
    design_bands,
    differentiator,
    firls,
    gain,
    gaussian,
    highpass,
    hilbert,
    lowpass,
    moving_average,
    remez,
    taps,
)
from streamconv.dsp.design.response import analyze, frequency_response

__all__ = [
    "DESIGNERS",
    "WINDOW_TRANSITION",
    "analyze",
    "apply_filter",
    "apply_mimo",
    "apply_mix",
    "bandpass",
    "bandstop",
    "compact_taps",
    "delay",
    "design",
    "design_bands",
    "differentiator",
    "firls",
    "frequency_response",
    "gain",
    "gaussian",
    "highpass",
    "hilbert",
    "identity",
    "lowpass",
    "moving_average",
    "remez",
    "taps",
]
