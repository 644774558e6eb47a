"""`obsagent serve`: one long-lived process that runs night after night (and the day between)."""
