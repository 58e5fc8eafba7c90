"""``python -m cqdlaser ...`` is ``cqdlaser ...``."""

from cqdlaser.studies.cli import main

raise SystemExit(main())
