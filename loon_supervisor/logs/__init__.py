"""Log streams -> multiplexer -> sinks (session files, terminal)."""
