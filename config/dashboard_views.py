"""POST /dashboard/guide/dismiss/: a staff member closes the first-day guide for good."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.actors import Actor, Source
from config.dashboard import guide_dismiss
from config.errors import DomainError


@require_POST
@staff_member_required
def guide_dismiss_view(request):
    try:
        guide_dismiss(actor=Actor.of(request.user, Source.ADMIN))
    except DomainError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(reverse("admin:index"))
