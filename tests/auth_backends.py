"""Test-only: django-axes refuses `authenticate()` calls without a request, which is what the
test client's `client.login(username=..., password=...)` makes. Those calls skip the lock-out
check here; every real login (admin form, token endpoint) passes a request and is checked."""

from axes.backends import AxesStandaloneBackend


class AxesBackendAllowingTestClientLogin(AxesStandaloneBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
