from api import views
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/verifyExperimentName/<str:experiment_name>", views.verify_experiment_name),
    path("api/", views.index),
    path("api/files/<str:name>", views.files),
    path("api/boom/", views.boom),
    path("api/s3-upload/", include("s3_file_field.urls")),
]
