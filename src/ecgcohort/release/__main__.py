"""``python -m ecgcohort.release verify DIR``: check a release (see ecgcohort.release.build)."""

import sys

from ecgcohort.release.build import main

sys.exit(main())
