from django.apps import AppConfig


class ApiConfig(AppConfig):
    # With MINIO_ENABLED, Loon's storage (django-minio-storage) and django-s3-file-field's
    # system check (run by `migrate`) need the object store to answer, as in Loon.
    name = "api"
