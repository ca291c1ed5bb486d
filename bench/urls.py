"""The app's URLs plus a trivial authenticated view, the baseline of the status-endpoint scenario."""
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from oneglanse.urls import urlpatterns as app_urlpatterns


class BenchTrivialApi(APIView):
    """Authentication, permissions, middleware and JSON rendering, and nothing else."""

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("bench/trivial/", BenchTrivialApi.as_view()), *app_urlpatterns]
