"""The dashboard and JSON API: reads the library read-only, never drives hardware."""
