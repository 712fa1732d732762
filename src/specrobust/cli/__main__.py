"""``python -m specrobust.cli`` (what torchrun and a study's workers start)."""

import sys

from specrobust.cli import main

sys.exit(main())
