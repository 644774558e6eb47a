"""Sequence files: the model of what a user may write, and loading it with file:line errors."""

from agent.config.loading import Problem, SequenceError, load_sequence, parse_sequence
from agent.config.model import SUPPORTED_VERSIONS, Sequence, Target

__all__ = [
    "SUPPORTED_VERSIONS",
    "Problem",
    "Sequence",
    "SequenceError",
    "Target",
    "load_sequence",
    "parse_sequence",
]
