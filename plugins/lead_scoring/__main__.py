"""``python -m lead_scoring``: the same as the ``lead-scoring`` command."""

import sys

from lead_scoring.cli import main

sys.exit(main())
