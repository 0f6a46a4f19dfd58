"""The Docker engine, through aiodocker. Nothing above this package imports aiodocker: the
rest of the code holds a :class:`~loon_supervisor.engine.docker_engine.DockerEngine`."""
