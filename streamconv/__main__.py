"""``python -m streamconv``: the same command line as the ``streamconv`` script."""

import sys

from streamconv.cli import main

if __name__ == "__main__":  # not when imported (tests/test_imports.py imports every module)
    sys.exit(main())
