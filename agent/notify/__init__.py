"""Notifications: a message to a phone or chat (through apprise) when something needs a person."""

from agent.notify.notifier import Notifier, NotifierCounts

__all__ = ["Notifier", "NotifierCounts"]
