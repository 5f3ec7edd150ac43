"""`python -m obsd` runs the daemon command line."""

from obsd.daemon.main import main

raise SystemExit(main())
