import socket

from django.apps import AppConfig
from django.conf import settings


class ApiConfig(AppConfig):
    name = "api"

    def ready(self) -> None:
        # Like Loon's MinIO storage: with MINIO_ENABLED nothing works unless MinIO answers.
        if settings.MINIO_ENABLED:
            host, _, port = settings.MINIO_STORAGE_ENDPOINT.partition(":")
            socket.create_connection((host, int(port or 9000)), timeout=5).close()
