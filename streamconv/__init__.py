"""streamconv: streaming 1D convolution and pattern matching."""

from streamconv.dsp.convolve import Convolver
from streamconv.dsp.matcher import Detection, Matcher
from streamconv.dsp.periodicity import Periodicity
from streamconv.errors import ConfigError, RuntimeFailure, StreamconvError, UsageError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Convolver",
    "Detection",
    "Matcher",
    "Periodicity",
    "RuntimeFailure",
    "StreamconvError",
    "UsageError",
    "__version__",
]
