"""What every server-rendered page shares: sign-in required, and a domain NotFound as the site's 404."""
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from oneglanse.exceptions import NotFound


def page_scoped(view):
    """Domain NotFound (unknown, malformed or someone else's id) becomes the site's 404 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail) from None

    return login_required(wrapper)
