"""What every portal response carries: CSP without inline script, framing for WeChat, CSRF."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import staff
from tests.portal.conftest import login, place_order

pytestmark = pytest.mark.django_db


def csp_directives(response) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in response["Content-Security-Policy"].split("; ")}


@pytest.mark.parametrize("path", ["/h5/", "/h5/orders/", "/h5/verify/"])
def test_portal_responses_carry_a_csp_without_inline_script(client, path):
    response = client.get(path)
    csp = csp_directives(response)

    assert csp["script-src"] == "'none'"
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert csp["default-src"] == "'none'" and csp["style-src"] == "'self'" and csp["form-action"] == "'self'"
    assert csp["base-uri"] == "'none'"


def test_portal_pages_may_be_framed_by_wechat_but_carry_no_x_frame_options_deny(client):
    response = client.get("/h5/")
    ancestors = csp_directives(response)["frame-ancestors"].split()

    assert "X-Frame-Options" not in response
    assert "'self'" in ancestors and any("weixin.qq.com" in a for a in ancestors)
    assert "*" not in ancestors


def test_the_admin_keeps_x_frame_options_deny(client):
    response = client.get("/admin/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" not in response


def test_portal_pages_are_not_cached_and_do_not_leak_referrers(client):
    response = client.get("/h5/")

    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_script_and_load_nothing_from_another_origin(client):
    place_order(buyer="13800138000")
    login(client, "13800138000")
    for path in ("/h5/orders/",):
        html = client.get(path).content.decode()
        assert "<script" not in html.lower()
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        assert 'href="/static/portal/portal.css"' in html


@pytest.mark.parametrize("path,data", [("/h5/", {"phone": "13800138000"}), ("/h5/verify/", {"code": "123456"}),
                                       ("/h5/resend/", {}), ("/h5/logout/", {})])
def test_every_form_needs_the_csrf_token(path, data):
    client = Client(enforce_csrf_checks=True)
    session = client.session
    session["portal_pending"] = "+8613800138000"
    session.save()

    assert client.post(path, data).status_code == 403


def test_the_phone_form_works_with_its_csrf_token():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/h5/")
    token = page.context["csrf_token"]

    assert client.post("/h5/", {"phone": "13800138000", "csrfmiddlewaretoken": str(token)}).status_code == 302


def test_session_and_csrf_cookies_are_secure_when_debug_is_off():
    import subprocess
    import sys

    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); "
            "from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY)")
    env = {"SECRET_KEY": "x", "DEBUG": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)

    assert out.stdout.split() == ["True", "True", "True"]


def test_the_sms_outbox_is_read_only_for_supervisors_and_hidden_from_customer_service(client):
    from portal.models import PortalSmsOutbox

    client.post("/h5/", {"phone": "13800138000"})
    row = PortalSmsOutbox.objects.get()
    supervisor, cs = staff("supervisor"), staff("customer_service")

    client.force_login(supervisor)
    assert client.get("/admin/portal/portalsmsoutbox/").status_code == 200
    assert client.get(f"/admin/portal/portalsmsoutbox/{row.pk}/change/").status_code == 200
    assert client.post(f"/admin/portal/portalsmsoutbox/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/portal/portalsmsoutbox/add/").status_code == 403
    client.force_login(cs)
    assert client.get("/admin/portal/portalsmsoutbox/").status_code == 403
    assert PortalSmsOutbox.objects.count() == 1
