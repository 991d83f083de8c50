"""`python -m alerts ...`: the alert engine's command line."""

import sys

from alerts.cli import main

sys.exit(main())
