"""Sources and sinks behind one small protocol: ``read(frames)`` / ``write(block)`` / ``close()``.

`open_source` and `open_sink` turn the stream locators of the command line and the config
(``-``, a path, ``device:NAME``, ``pyaudio:N``, ``udp://HOST:PORT``, ``null``) into them.
"""

from streamconv.io.base import Sink, Source
from streamconv.io.locators import open_sink, open_source
from streamconv.io.memory import MemorySink, MemorySource, NullSink
from streamconv.io.pcm import PCM_FORMATS

__all__ = [
    "PCM_FORMATS",
    "MemorySink",
    "MemorySource",
    "NullSink",
    "Sink",
    "Source",
    "open_sink",
    "open_source",
]
