"""`python -m cli` is `testboost`."""

import sys

from cli import main

sys.exit(main())
