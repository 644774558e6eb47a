"""agent/web: the dashboard and JSON API. Reads the library read-only; never drives hardware."""
