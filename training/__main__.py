"""`python -m training`: the command line."""

import sys

from training.cli import main

sys.exit(main())
