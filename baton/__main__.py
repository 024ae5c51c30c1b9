"""`python -m baton` → the `baton` console script."""

import sys

from baton.cli import main

sys.exit(main())
