"""Streams out of a running container over exec and the archive endpoint, one module per
job: commands, frames, tail (followed files), archive, container_log, status."""
