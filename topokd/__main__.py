"""``python -m topokd``: the ``topokd`` command."""

import sys

from .cli import main

sys.exit(main())
