"""``python -m topokd.cli``: the ``topokd`` command."""

import sys

from . import main

sys.exit(main())
