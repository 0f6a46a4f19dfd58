"""Reads the environment exactly where Loon's apps/server/server/settings.py does, with
Loon's storage block (django-minio-storage, django-s3-file-field) as upstream writes it."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env(DEBUG=(bool, False))

SITE_PREFIX = "http://"
if not env.bool("USE_HTTP", default=True):
    SITE_PREFIX = "https://"

SECRET_KEY = env("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=True)  # Loon's default: the env file must say false
ALLOWED_HOSTS = [env("ALLOWED_HOST", default="")]
MINIO_ENABLED = env.bool("MINIO_ENABLED", default=True)

# As Loon's: the admin (whose static files a deployment must serve) and no LOGGING setting.
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "api.apps.ApiConfig",
    "s3_file_field",
]
if MINIO_ENABLED is True:
    INSTALLED_APPS.append("minio_storage")
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
ROOT_URLCONF = "server.urls"
WSGI_APPLICATION = "server.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": env("DATABASE_NAME"),
        "USER": env("DATABASE_USER"),
        "PASSWORD": env("DATABASE_PASSWORD"),
        "HOST": env("DATABASE_HOST", default="localhost"),
        "PORT": env("DATABASE_PORT", default="3306"),
    }
}
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://localhost:6379/0")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default="redis://localhost:6379/0")
CELERY_TASK_TRACK_STARTED = True

# Loon's MinIO storage block, as upstream writes it (MINIO_STORAGE_USE_HTTPS hard-coded).
if MINIO_ENABLED is True:
    DEFAULT_FILE_STORAGE = "minio_storage.storage.MinioMediaStorage"
    STATICFILES_STORAGE = "minio_storage.storage.MinioStaticStorage"
    MINIO_STORAGE_ENDPOINT = env("MINIO_STORAGE_ENDPOINT", default="localhost:9000")
    MINIO_STORAGE_USE_HTTPS = False
    MINIO_STORAGE_ACCESS_KEY = env("MINIO_STORAGE_ACCESS_KEY")
    MINIO_STORAGE_SECRET_KEY = env("MINIO_STORAGE_SECRET_KEY")
    MINIO_STORAGE_MEDIA_BUCKET_NAME = env("MINIO_STORAGE_MEDIA_BUCKET_NAME", default="data")
    MINIO_STORAGE_STATIC_BUCKET_NAME = env("MINIO_STORAGE_STATIC_BUCKET_NAME", default="static")
    MINIO_STORAGE_MEDIA_USE_PRESIGNED = True
    MINIO_STORAGE_AUTO_CREATE_MEDIA_BUCKET = True
    MINIO_STORAGE_MEDIA_URL = SITE_PREFIX + env("MINIO_STORAGE_MEDIA_URL")
    MINIO_STORAGE_STATIC_URL = SITE_PREFIX + env("MINIO_STORAGE_STATIC_URL")
