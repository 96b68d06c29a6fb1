"""Typed access to Fabro's HTTP API (`/api/v1`): models, errors and the async client."""

from bot.fabro.client import FabroClient
from bot.fabro.errors import (
    FabroConflict,
    FabroError,
    FabroNotFound,
    FabroRejected,
    FabroUnauthorized,
    FabroUnavailable,
)

__all__ = [
    "FabroClient",
    "FabroConflict",
    "FabroError",
    "FabroNotFound",
    "FabroRejected",
    "FabroUnauthorized",
    "FabroUnavailable",
]
