"""Domain errors raised by the engine.

Each message says what was wrong and what to do about it; ``permanent`` tells a job
runner whether retrying the same input could ever succeed.
"""

from __future__ import annotations

from scribe.exceptions import ScribeError


class EngineError(ScribeError):
    """An engine failure with a message fit to show a user."""

    code = "engine_error"
    http_status = 500

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ModelNotFoundError(EngineError):
    code = "model_not_found"
    http_status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class MediaError(EngineError):
    """The input cannot be read as audio: corrupt, empty, not media, or no audio stream."""

    code = "unsupported_media"
    http_status = 415

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class NoAudioStreamError(MediaError):
    code = "no_audio_stream"


class DevicePlanError(EngineError):
    """A device or compute type was asked for that this machine cannot provide."""

    code = "device_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class TranscriptionCancelled(Exception):  # noqa: N818 - a signal, not an error
    """Raised at a segment boundary when the caller's cancel callback said so."""

    def __init__(self, processed_s: float) -> None:
        super().__init__(f"cancelled after {processed_s:.1f} s of audio")
        self.processed_s = processed_s
