"""The admin side of the configuration audit trail (issue 17): a 历史 page per object.

`ConfigHistoryAdmin` is django-simple-history's `SimpleHistoryAdmin` made safe for us:

- the history of an object outside the person's scope is a 404, like its change page
  (simple-history would otherwise fall back to the historical rows and show them);
  the history of a deleted object is shown only to staff without a scope limit;
- history pages are read-only: no revert (SIMPLE_HISTORY_REVERT_DISABLED hides the
  button, and a POST to a historical version is refused here), so every change still
  goes through the change form and its checks.

Who may see the history: whoever may view or change the object (Django's view/change
permission of the model); others get a 403.
"""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils.translation import gettext
from simple_history.admin import SimpleHistoryAdmin

from config.admin_tools import admin_actor


class ConfigHistoryAdmin(SimpleHistoryAdmin):
    def _history_allowed_or_404(self, request, object_id) -> None:
        pk = unquote(object_id)
        try:
            if self.get_queryset(request).filter(pk=pk).exists():
                return
            exists = self.model._default_manager.filter(pk=pk).exists()
        except (ValueError, TypeError, ValidationError):
            raise Http404(gettext("对象不存在")) from None
        if exists or not admin_actor(request).scope.unrestricted:
            raise Http404(gettext("对象不存在"))

    def history_view(self, request, object_id, extra_context=None):
        self._history_allowed_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._history_allowed_or_404(request, object_id)
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied(gettext("历史记录只读,不能回滚"))
        return super().history_form_view(request, object_id, version_id, extra_context)
