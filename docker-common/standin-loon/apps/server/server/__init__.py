from celery_app import app as core

__all__ = ("core",)
