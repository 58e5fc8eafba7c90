"""``python -m studies ...`` is ``cqdlaser ...``."""

from studies.cli import main

raise SystemExit(main())
