"""The smallest valid sequence file, for tests that add the keys they are about."""

from __future__ import annotations

MINIMAL_SEQUENCE = """\
version: 1
site: {latitude: 52.5, longitude: 13.4}
indi:
  devices: {camera: CCD Simulator}
camera: {sensor: cmos}
filters: [L]
calibration:
  flats: {source: sky-both}
"""
