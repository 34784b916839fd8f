"""Domain errors of the jobs API, each with the HTTP status scribe.errors answers it with."""

from __future__ import annotations

from scribe.exceptions import ScribeError


class JobError(ScribeError):
    code = "job_error"
    http_status = 400


class UploadTooLargeError(JobError):
    code = "upload_too_large"
    http_status = 413

    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            f"The upload is larger than this server's limit of {limit_mb} MB "
            "(SCRIBE_MAX_UPLOAD_MB). Split the file or ask the operator to raise the limit."
        )


class MediaTooLongError(JobError):
    code = "duration_too_long"
    http_status = 413

    def __init__(self, duration_s: float, limit_s: int) -> None:
        super().__init__(
            f"The audio is {_duration(duration_s)} long; this server accepts at most "
            f"{_duration(limit_s)} (SCRIBE_MAX_DURATION_S). Split the file."
        )


class ClipTooLongError(JobError):
    code = "clip_too_long"
    http_status = 413

    def __init__(self, limit_s: int) -> None:
        super().__init__(
            f"The clip is longer than {_duration(limit_s)}, the most POST /v1/detect takes "
            "(SCRIBE_DETECT_MAX_S). Send shorter pieces, or transcribe it with POST /v1/jobs."
        )


def _duration(seconds: float) -> str:
    """Seconds under a minute (a 30 s limit is not "0 minutes"), minutes from one."""
    if seconds < 60:
        return f"{round(seconds, 1):g} seconds"
    return f"{seconds / 60:.1f} minutes"


class QueueFullError(JobError):
    code = "queue_full"
    http_status = 429

    def __init__(self, depth: int, retry_after_s: int) -> None:
        super().__init__(
            f"The queue is full ({depth} jobs waiting). Retry after {retry_after_s} seconds."
        )
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class JobStateError(JobError):
    code = "job_not_ready"
    http_status = 409


class ResultGoneError(JobError):
    code = "result_expired"
    http_status = 410


class ResultErasedError(ResultGoneError):
    code = "erased"


class ChannelsNeededError(JobError):
    code = "not_multichannel"

    def __init__(self, channels: int) -> None:
        super().__init__(
            f'diarize: "channels" labels speakers by channel, and this file has {channels} '
            "channel(s). Send the multi-channel original (one speaker per channel), or use "
            '"diarize": true to tell speakers apart by voice.'
        )
