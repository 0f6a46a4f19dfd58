"""Byte streams out of the container's log files: sources, followers, per-stream copies."""
