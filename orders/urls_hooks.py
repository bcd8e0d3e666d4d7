"""Platform webhook URLs: ``/hooks/<platform>/<shop_code>/`` (see `orders.webhooks`)."""

from django.urls import path

from orders.webhooks import platform_hook

app_name = "hooks"

urlpatterns = [
    path("<slug:platform>/<slug:shop_code>/", platform_hook, name="platform"),
]
