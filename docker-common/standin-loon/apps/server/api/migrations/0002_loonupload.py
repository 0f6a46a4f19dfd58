import s3_file_field.fields
from django.db import migrations, models

import api.models


class Migration(migrations.Migration):
    dependencies = [("api", "0001_initial")]
    operations = [
        migrations.CreateModel(
            name="LoonUpload",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                           serialize=False, verbose_name="ID")),
                ("file_name", models.CharField(max_length=255)),
                ("experiment_name", models.CharField(max_length=255)),
                ("blob", s3_file_field.fields.S3FileField(
                    upload_to=api.models.LoonUpload.upload_path)),
            ],
        ),
    ]
