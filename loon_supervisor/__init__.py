"""loon-supervisor: deploy Loon as one container and follow every service's log."""

__version__ = "0.1.0"
