from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.health import healthz

admin.site.site_header = _("Order Hub 订单中台")
admin.site.site_title = "Order Hub"
admin.site.index_title = _("工作台")

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("h5/", include("portal.urls")),
    path("pack/", include("orders.pack_urls")),
    path("api/v1/", include("config.api_urls")),
    path("hooks/carriers/", include("orders.carrier_hooks")),  # before any hooks/<platform>/<shop_code>/
    path("hooks/", include("orders.urls_hooks")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

from config.dashboard_views import guide_dismiss_view  # noqa: E402 - the admin home's first-day guide

urlpatterns.append(path("dashboard/guide/dismiss/", guide_dismiss_view, name="dashboard_guide_dismiss"))
