"""Who did it: every service takes an `Actor` so each change is attributable.

A person acts through the admin, the API or the portal; the system acts through jobs,
platform sync and imports. System actors hold every permission; people hold what their
roles grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class Source:
    ADMIN = "admin"
    API = "api"
    JOB = "job"
    PLATFORM = "platform"
    PORTAL = "portal"
    IMPORT = "import"
    SYSTEM = "system"
    CHOICES = [
        (ADMIN, "后台"),
        (API, "API"),
        (JOB, "后台任务"),
        (PLATFORM, "平台同步"),
        (PORTAL, "客户门户"),
        (IMPORT, "导入"),
        (SYSTEM, "系统"),
    ]


@dataclass(frozen=True)
class Scope:
    """Which shops and warehouses a person may see; None means all of them.

    Set per person by a `orders.StaffProfile` (an agency gives each brand team only its
    shops; a warehouse team only its warehouses). Selectors apply it to every queryset.
    """

    shop_ids: frozenset[int] | None = None
    warehouse_ids: frozenset[int] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.shop_ids is None and self.warehouse_ids is None

    def allows_shop(self, shop_id: int | None) -> bool:
        return self.shop_ids is None or shop_id in self.shop_ids

    def allows_warehouse(self, warehouse_id: int | None) -> bool:
        return self.warehouse_ids is None or warehouse_id in self.warehouse_ids


UNRESTRICTED = Scope()


@dataclass(frozen=True)
class Actor:
    user: Any = None  # a django User, or None for the system
    source: str = Source.SYSTEM
    name: str = ""  # for system actors: which job or platform
    # Permissions a path grants this person for one operation on top of their roles (e.g. the
    # distributor-order import lets whoever may run it create and pay those orders), see `granting`.
    grants: frozenset = frozenset()

    @classmethod
    def of(cls, user: "AbstractBaseUser", source: str) -> "Actor":
        return cls(user=user, source=source)

    @classmethod
    def system(cls, name: str = "system", source: str = Source.SYSTEM) -> "Actor":
        return cls(user=None, source=source, name=name)

    @property
    def is_system(self) -> bool:
        return self.user is None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.get_username()
        return self.name or self.source

    def granting(self, *perms: str) -> "Actor":
        """The same person, also holding `perms` for what they do with the returned actor.
        For a path whose own permission stands for those (checked before it is called)."""
        from dataclasses import replace

        return replace(self, grants=self.grants | frozenset(perms))

    def can(self, perm: str | None) -> bool:
        if not perm:
            return True
        if self.user is None:
            return True
        if perm in self.grants:
            return bool(self.user.is_active)
        return bool(self.user.is_active and self.user.has_perm(perm))

    @cached_property
    def scope(self) -> Scope:
        """The shops / warehouses this actor is limited to (None = all).

        System actors and superusers are never limited; a person without a staff profile,
        or whose profile lists no shops (no warehouses), is not limited on that axis.
        Read once per actor (an actor lives for one request or one job).
        """
        user = self.user
        if user is None or getattr(user, "is_superuser", False) or not getattr(user, "pk", None):
            return UNRESTRICTED
        from orders.models import StaffProfile  # config must not import apps at load time

        profile = StaffProfile.objects.filter(user_id=user.pk).first()
        if profile is None:
            return UNRESTRICTED
        shop_ids = frozenset(profile.shops.values_list("pk", flat=True))
        warehouse_ids = frozenset(profile.warehouses.values_list("pk", flat=True))
        return Scope(shop_ids=shop_ids or None, warehouse_ids=warehouse_ids or None)
