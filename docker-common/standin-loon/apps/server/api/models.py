import uuid

from django.db import models
from s3_file_field import S3FileField


class Upload(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created = models.DateTimeField(auto_now_add=True)


class LoonUpload(models.Model):
    """Loon's upload model (api/models.py upstream), reduced to its S3FileField: the browser
    uploads straight to the object store through django-s3-file-field's presigned URLs."""

    def upload_path(instance, filename):
        return f"temp/{uuid.uuid4()}/{filename}"

    file_name = models.CharField(max_length=255)
    experiment_name = models.CharField(max_length=255)
    blob = S3FileField(upload_to=upload_path)
