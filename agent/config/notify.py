"""The `notifications:` section: where the agent sends messages (apprise URLs) and which ones.

Each URL is checked at validation by apprise itself, so a typo in a service name or a URL missing
its token is reported with its line before the night, not discovered when a fault goes unheard.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

NotificationKind = Literal["night_summary", "unsafe", "fault", "disk_low", "device_missing"]
KINDS: tuple[NotificationKind, ...] = ("night_summary", "unsafe", "fault", "disk_low", "device_missing")

# Minutes between two messages of one kind: a sky that flaps between safe and unsafe, or a
# device that comes and goes, must not send a message a minute all night.
DEFAULT_MIN_INTERVAL: dict[NotificationKind, float] = {
    "night_summary": 0.0,
    "unsafe": 30.0,
    "fault": 15.0,
    "disk_low": 360.0,
    "device_missing": 60.0,
}


def _problem(message: str, at: str | None = None) -> PydanticCustomError:
    return PydanticCustomError("obsagent", message, {"at": at} if at else None)


def apprise_url_problem(url: str) -> str | None:
    """Why apprise cannot use `url`, or None when it can (parsing only: nothing is sent)."""
    import apprise
    from apprise.manager_plugins import NotificationManager

    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return f"{url!r} is not a notification URL; write SERVICE://..., e.g. ntfy://ntfy.sh/my-topic"
    if scheme.lower() not in NotificationManager():
        return (f"{scheme!r} is not a notification service apprise knows; see the list of services "
                "at https://github.com/caronc/apprise/wiki")  # fmt: skip
    quiet = logging.getLogger("apprise")
    was = quiet.disabled
    quiet.disabled = True  # apprise logs its own complaint as an ERROR; ours is the one line
    try:
        parsed = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        quiet.disabled = was
    if parsed is None:
        return f"{url!r} is not a valid {scheme} URL (a host, token or topic missing?); see apprise's page for {scheme}"
    return None


def _usable_url(value: str) -> str:
    url = value.strip()
    problem = apprise_url_problem(url)
    if problem is not None:
        raise _problem(problem)
    return url


# each URL checked on its own, so every bad one in a list is reported at once with its line
NotificationUrl = Annotated[str, AfterValidator(_usable_url)]
Minutes = Annotated[float, Field(ge=0, le=7 * 24 * 60)]


class NotificationSettings(BaseModel):
    """Messages to a phone or chat when something needs a person: `urls` are apprise URLs
    (ntfy://, tgram://, mailto://, json://, ...); only the kinds in `events` are sent, each at most
    once per `min_interval_minutes` (kinds not named keep their defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[NotificationUrl] = Field(default_factory=list, description="apprise URLs; none = no notifications")
    events: list[NotificationKind] = Field(default_factory=lambda: list(KINDS), description="kinds to send")
    min_interval_minutes: dict[NotificationKind, Minutes] = Field(
        default_factory=dict, description="minutes between two messages of a kind (defaults per kind)"
    )

    @field_validator("events")
    @classmethod
    def _events_unique(cls, value: list[NotificationKind]) -> list[NotificationKind]:
        for index, kind in enumerate(value):
            if kind in value[:index]:
                raise _problem(f"{kind!r} is listed twice", at=str(index))
        return value
