"""`POST /api/auth/token/`: DRF's token view with the project's parsers and renderers.

DRF's view hard-codes its own JSON parser, which a deeply nested body turns into a 500.
(Kept apart from oneglanse/security.py, which DRF imports while its views module is loading.)
"""
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.settings import api_settings


class ObtainTokenApi(ObtainAuthToken):
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES
    renderer_classes = api_settings.DEFAULT_RENDERER_CLASSES
