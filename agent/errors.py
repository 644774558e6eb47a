"""Errors a user can cause. Each carries a one-line message that names the fix.

The CLI prints them without a traceback and exits 2.
"""


class ObsAgentError(Exception):
    """Base of every user-facing error."""


class ConfigError(ObsAgentError):
    """A sequence file or option is invalid."""


class IndiError(ObsAgentError):
    """Something went wrong talking to INDI."""


class ServerUnreachable(IndiError):
    """The INDI server cannot be reached."""


class DeviceMissing(IndiError):
    """A named device is not on the server."""


class PropertyMissing(IndiError):
    """A device lacks a property we need."""


class PropertyAlert(IndiError):
    """A device set one of its properties to ALERT."""


class IndiTimeout(IndiError):
    """A device did not answer in time."""


class ExposureFailed(IndiError):
    """An exposure did not deliver an image."""


class FrameMismatch(ObsAgentError):
    """Frames that must agree (size, bit depth, binning, CFA) do not."""


class CorruptFile(ObsAgentError):
    """A file cannot be read as FITS."""
