from api import views
from django.urls import path

urlpatterns = [
    path("api/", views.index),
    path("api/files/<str:name>", views.files),
    path("api/boom/", views.boom),
]
