from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.start, name="start"),
    path("verify/", views.verify, name="verify"),
    path("resend/", views.resend, name="resend"),
    path("orders/", views.order_list, name="orders"),
    path("orders/<str:token>/", views.order_detail, name="order"),
    path("logout/", views.logout, name="logout"),
]
