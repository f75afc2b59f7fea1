"""``python -m streamconv``: the same command line as the ``streamconv`` script."""

import sys

from streamconv.cli import main

sys.exit(main())
