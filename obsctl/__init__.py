"""obsctl: the thin command-line client of the obsd daemon."""
