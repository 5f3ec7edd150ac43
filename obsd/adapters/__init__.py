"""Adapters: the small pieces that touch files, sockets, clocks and the network."""
