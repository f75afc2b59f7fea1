"""Reading taps and templates for a config: the one array reader, `streamconv.io.arrays`."""

from streamconv.io.arrays import TEXT_EXTENSIONS, read_array

__all__ = ["TEXT_EXTENSIONS", "read_array"]
