"""The `housekeeping:` section: how much of the data disk must stay free."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HousekeepingSettings(BaseModel):
    """Capture stops (cleanly, with a message) before the data disk fills; it resumes when space returns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_free_mb: int = Field(
        default=1024, ge=0, description="free space (MB) that must remain after the next frame is written"
    )
    prune_synced: bool = Field(
        default=False,
        description="on a low disk, delete raw calibration frames whose masters are verified upstream",
    )
