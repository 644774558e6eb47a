"""Flat-field exposure control: panel brightness search, trained settings, sky flats, the learned twilight."""
