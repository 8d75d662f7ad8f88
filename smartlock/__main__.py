"""`python -m smartlock` is the `smartlock` command."""

import sys

from smartlock.cli import main

sys.exit(main())
