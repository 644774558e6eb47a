"""Keep astropy and astroplan offline: the agent at the mount has no internet.

Call `configure()` before any time conversion. It uses the IERS tables that ship in
astropy-iers-data and accepts their age, and it stops astroplan fetching anything.
"""

from __future__ import annotations

_done = False


def configure() -> None:
    global _done
    if _done:
        return
    from astropy.utils import data as astropy_data
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "warn"
    astropy_data.conf.allow_internet = False
    _done = True
