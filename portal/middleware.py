"""Security headers for the portal's pages (/h5/): Django 5.2 has no built-in CSP.

- Content-Security-Policy without inline script (the portal has no script at all), styles
  and images from our own origin only, forms posting only to our origin.
- Framing: no X-Frame-Options DENY here; `frame-ancestors` (settings.PORTAL_FRAME_ANCESTORS)
  names who may embed the page, so WeChat's official-account menu keeps working.
- Cache-Control: no-store, because every page past the first shows personal data.
"""

from __future__ import annotations

from django.conf import settings

PORTAL_PREFIX = "/h5/"


def content_security_policy() -> str:
    return "; ".join([
        "default-src 'none'",
        "script-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        f"frame-ancestors {settings.PORTAL_FRAME_ANCESTORS}",
    ])


class PortalSecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path_info.startswith(PORTAL_PREFIX):
            response["Content-Security-Policy"] = content_security_policy()
            response.xframe_options_exempt = True  # frame-ancestors decides (see module docstring)
            response["Cache-Control"] = "no-store"
            response["Referrer-Policy"] = "same-origin"
            response["X-Content-Type-Options"] = "nosniff"
            response["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
        return response
