"""Who did it: every service takes an `Actor` so each change is attributable.

A person acts through the admin, the API or the portal; the system acts through jobs,
platform sync and imports. System actors hold every permission; people hold what their
roles grant.
"""

from __future__ import annotations

from dataclasses import dataclass
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
class Actor:
    user: Any = None  # a django User, or None for the system
    source: str = Source.SYSTEM
    name: str = ""  # for system actors: which job or platform

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

    def can(self, perm: str | None) -> bool:
        if not perm:
            return True
        if self.user is None:
            return True
        return bool(self.user.is_active and self.user.has_perm(perm))
