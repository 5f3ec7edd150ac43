"""obsd: register for İTÜ courses at the instant OBS opens."""

# Kept free of imports so that `obsctl` (which shares obsd.paths and obsd.core.framing)
# starts without loading the daemon.
__version__ = "0.1.0"
