"""``python -m cqdlaser.studies ...`` is ``cqdlaser ...``."""

from cqdlaser.studies.cli import main

raise SystemExit(main())
