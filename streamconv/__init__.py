"""streamconv: streaming 1D convolution and pattern matching."""

from importlib import import_module

from streamconv.errors import ConfigError, RuntimeFailure, StreamconvError, UsageError

__version__ = "0.1.0"

# The DSP classes load on first use (PEP 562), so a command that only filters does not pay for
# scipy's import when it starts: every ``streamconv`` process imports this package.
_LAZY = {
    "Convolver": "streamconv.dsp.convolve",
    "Detection": "streamconv.dsp.detection",
    "Endpoint": "streamconv.runner",
    "Matcher": "streamconv.dsp.matcher",
    "Periodicity": "streamconv.dsp.periodicity",
    "Runner": "streamconv.runner",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamconv' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "Convolver",
    "Detection",
    "Endpoint",
    "Matcher",
    "Periodicity",
    "Runner",
    "RuntimeFailure",
    "StreamconvError",
    "UsageError",
    "__version__",
]
