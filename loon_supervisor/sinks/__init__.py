"""Where lines end up: session files, out.log events, the terminal."""
