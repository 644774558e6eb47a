"""Running under systemd: readiness and watchdog, the unit file, and logging into the journal."""
