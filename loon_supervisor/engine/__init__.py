"""The Docker engine, through aiodocker. Nothing above this package imports aiodocker."""
