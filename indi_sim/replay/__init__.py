"""Replay drivers: property layouts, permissions and quirks of real INDI drivers, from their sources."""
