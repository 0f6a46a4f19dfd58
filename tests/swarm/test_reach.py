"""The environments `up` writes for a swarm's core and its workers (swarm/reach.py): pure
logic, no engine."""

from __future__ import annotations

from loon_supervisor.engine.records import NodeInfo
from loon_supervisor.swarm.reach import (
    broker_target,
    core_address,
    redis_password,
    role_environment,
)

ENV = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
       "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/0",
       "MINIO_STORAGE_ENDPOINT": "127.0.0.1:9000", "DATABASE_HOST": "127.0.0.1"}


def test_workers_get_the_core_address_and_the_core_binds_it() -> None:
    roles = role_environment(ENV, "10.1.2.3", "key")
    pw = redis_password("key")
    assert roles["core"] == {"LOON_BIND_ADDRESS": "10.1.2.3", "REDIS_PASSWORD": pw,
                             "CELERY_BROKER_URL": f"redis://:{pw}@127.0.0.1:6379/0",
                             "CELERY_RESULT_BACKEND": f"redis://:{pw}@127.0.0.1:6379/0"}
    assert roles["celery"] == {"DATABASE_HOST": "10.1.2.3",
                               "CELERY_BROKER_URL": f"redis://:{pw}@10.1.2.3:6379/0",
                               "CELERY_RESULT_BACKEND": f"redis://:{pw}@10.1.2.3:6379/0",
                               "MINIO_STORAGE_ENDPOINT": "10.1.2.3:9000"}
    assert broker_target({**ENV, **roles["celery"]}) == ("10.1.2.3", 6379)


def test_an_external_store_keeps_its_endpoint() -> None:
    roles = role_environment({**ENV, "MINIO_STORAGE_ENDPOINT": "s3.lab:443"}, "10.1.2.3", "k")
    assert "MINIO_STORAGE_ENDPOINT" not in roles["celery"]


def test_the_password_is_stable_per_key_and_differs_between_keys() -> None:
    assert redis_password("a") == redis_password("a") != redis_password("b")
    assert len(redis_password("a")) == 40


def test_the_core_address_comes_from_config_else_the_volume_node() -> None:
    nodes = [NodeInfo("w", address="10.0.0.9"),
             NodeInfo("m", address="127.0.0.1", manager_address="10.0.0.2", volumes=True)]
    assert core_address(nodes, None) == "10.0.0.2"
    assert core_address(nodes, "core.lab") == "core.lab"
    assert core_address([NodeInfo("w", address="10.0.0.9")], None) == "127.0.0.1"
    node = NodeInfo.from_docker({"ID": "x", "Status": {"Addr": "10.0.0.5", "State": "ready"},
                                 "ManagerStatus": {"Addr": "10.0.0.5:2377"},
                                 "Spec": {"Labels": {"loon.volumes": "true"}}})
    assert node.advertise == "10.0.0.5" and node.volumes
