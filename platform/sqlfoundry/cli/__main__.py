"""`python -m sqlfoundry.cli`: the same as the `sqlfoundry` command."""

import sys

from sqlfoundry.cli import main

sys.exit(main())
