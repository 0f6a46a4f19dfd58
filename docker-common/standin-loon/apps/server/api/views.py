"""/api/ says what the settings read; /api/files/NAME stores (PUT) and reads (GET) a file
through Django's default storage, as Loon's uploads do; /api/boom/ fails on purpose (with a
secret in a local variable, which no log may show); /api/verifyExperimentName/NAME reads
aa_index.json from the default storage, as Loon's name check does (500 when it is absent)."""

import json

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.models import Upload


def index(request):
    return JsonResponse({"loon": "stand-in", "minio_enabled": settings.MINIO_ENABLED,
                         "debug": settings.DEBUG, "uploads": Upload.objects.count()})


@csrf_exempt
def files(request, name):
    if request.method == "PUT":
        if default_storage.exists(name):
            default_storage.delete(name)
        saved = default_storage.save(name, ContentFile(request.body))
        Upload.objects.get_or_create(name=saved)
        return JsonResponse({"saved": saved, "path": default_storage.path(saved)})
    if not default_storage.exists(name):
        return HttpResponse(status=404)
    with default_storage.open(name, "rb") as fh:
        return HttpResponse(fh.read(), content_type="application/octet-stream")


def boom(request):
    database_password = settings.DATABASES["default"]["PASSWORD"]  # noqa: F841 (a local)
    raise RuntimeError("the stand-in fails on purpose")


def verify_experiment_name(request, experiment_name):
    name = experiment_name.removesuffix(".json")
    with default_storage.open("aa_index.json", "r") as fh:
        known = [e.removesuffix(".json") for e in json.loads(fh.read())["experiments"]]
    return JsonResponse({"status": "FAILED" if name in known else "SUCCESS"})
