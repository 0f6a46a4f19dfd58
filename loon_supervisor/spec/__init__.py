"""From a validated config to what the engine gets: env file, build inputs, container spec."""
