"""Orchestration: the daemon process that wires the core to its adapters."""
