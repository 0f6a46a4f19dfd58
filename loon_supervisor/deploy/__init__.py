"""The deploy server: ``POST /deploy`` with a token re-deploys Loon (see docs/deploy-server.md)."""

from loon_supervisor.deploy.runner import (
    DeployContext,
    DeployStatus,
    DeployStep,
    DeployStepFailed,
    supervisor_deploy_step,
)
from loon_supervisor.deploy.server import DeployServer, run_deploy_server
from loon_supervisor.deploy.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerSettings,
    default_config_file,
    default_env_file,
    load_settings,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DeployContext",
    "DeployServer",
    "DeployStatus",
    "DeployStep",
    "DeployStepFailed",
    "ServerSettings",
    "default_config_file",
    "default_env_file",
    "load_settings",
    "run_deploy_server",
    "supervisor_deploy_step",
]
