"""`python -m obsctl` runs the client."""

from obsctl.cli import main

raise SystemExit(main())
