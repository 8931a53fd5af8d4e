"""``python -m vectorticks``: the same as the ``vectorticks`` command."""

import sys

from .cli import main

sys.exit(main())
