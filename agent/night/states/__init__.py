"""One module per state's activity. Each `run(ctx)` does the work and returns the event to fire."""

from . import calibration, closed, cooldown, flats, imaging, shutdown, startup, waiting

ACTIVITIES = {
    "startup": startup.run,
    "cooldown": cooldown.run,
    "waiting": waiting.run,
    "dusk_flats": flats.run_dusk,
    "dawn_flats": flats.run_dawn,
    "panel_flats": flats.run_panel,
    "imaging": imaging.run,
    "gap_calibration": calibration.run_gap,
    "morning_calibration": calibration.run_morning,
    "day_calibration": calibration.run_day,
    "closed": closed.run,
    "warmup": shutdown.run_warmup,
    "park": shutdown.run_park,
}
