"""Loon on Docker Swarm: one core service, N Celery workers, every task's log on this host.

``deploymentSettings.orchestrator: "swarm"`` deploys the built image as two services through
the Engine API (aiodocker's services, tasks and nodes):

* ``<name>-core``: one replica running every service but Celery (run-time service
  selection), placed on the node labelled ``loon.volumes=true`` because the MySQL/MinIO
  volumes are directories on that node;
* ``<name>-celery``: ``celeryReplicas`` replicas running only Celery, which reach the core's
  MariaDB and Redis on the same addresses as inside one container (host networking).

Logs: each task's in-container service files are followed through exec streams into
``<service>.<slot>.log`` (a replacement task in the same slot gets
``<service>.<slot>.<task>.log``). Exec needs the task's container on the engine it talks
to: tasks on other nodes are followed through those nodes' engines when
``deploymentSettings.swarmNodeEngines`` names them, else listed but not followed (said
once); the service-logs API would carry only the containers' stdout, not the services'
files.
"""
