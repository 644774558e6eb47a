"""obsagent: the observatory agent that runs at the mount."""

__version__ = "0.1.0"
