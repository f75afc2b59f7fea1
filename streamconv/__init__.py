"""streamconv: streaming 1D convolution and pattern matching."""

from streamconv.dsp.convolve import Convolver
from streamconv.errors import ConfigError, RuntimeFailure, StreamconvError, UsageError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Convolver",
    "RuntimeFailure",
    "StreamconvError",
    "UsageError",
    "__version__",
]
