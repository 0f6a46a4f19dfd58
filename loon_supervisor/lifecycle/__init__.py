"""Who owns a deployment while it lives: its state file and lock, its signals, its container."""
