"""The OneGlanse Agent project package: settings, URLs, WSGI and shared wiring."""
__version__ = "1.1.0"
