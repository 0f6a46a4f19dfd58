"""Loon on Docker Swarm: one core service, N Celery workers, every task's log on this host.

``deploymentSettings.orchestrator: "swarm"`` deploys the built image as two services through
the Engine API (aiodocker's services, tasks and nodes):

* ``<name>-core``: one replica running every service but Celery (run-time service
  selection), placed on the node labelled ``loon.volumes=true`` because the MySQL/MinIO
  volumes are directories on that node;
* ``<name>-celery``: ``celeryReplicas`` replicas running only Celery, which reach the core's
  MariaDB, Redis and MinIO at the core node's address (host networking; see
  :mod:`loon_supervisor.swarm.reach`).

Logs: each task's in-container service files are followed through exec streams into
``<service>.<slot>.log`` (a replacement task in the same slot gets
``<service>.<slot>.<task>.log``). Exec needs the task's container on the engine it talks
to: tasks on other nodes are followed through those nodes' engines when
``deploymentSettings.swarmNodeEngines`` names them, else listed but not followed (said
once); the service-logs API would carry only the containers' stdout, not the services'
files.

``-d`` hands the converged services to the background logger (``loon _logger``), which
continues each task's file at its size; so do ``loon attach`` after a killed logger and
``loon down`` when none runs (:mod:`loon_supervisor.swarm.tasklogs`).
"""
