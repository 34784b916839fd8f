"""Speak term sentences with espeak-ng and write a bench manifest beside them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from transcription.bench.manifest import BenchError

ESPEAK = "espeak-ng"
ESPEAK_INSTALL = "apt-get install espeak-ng"
ESPEAK_TIMEOUT_S = 60
DEFAULT_VOICE = "en-us"
DEFAULT_WORDS_PER_MINUTE = 150
MANIFEST_NAME = "manifest.jsonl"


def _lines(path: Path) -> list[dict]:
    if not path.is_file():
        raise BenchError(f"{path} does not exist.")
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            text, terms = line["text"], line.get("terms", [])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BenchError(
                f'{path}:{number}: need {{"text": "...", "terms": ["..."]}} JSON ({exc}).'
            ) from None
        if not isinstance(text, str) or not text.strip() or not isinstance(terms, list):
            raise BenchError(f'{path}:{number}: "text" must be text and "terms" a list.')
        lines.append(line)
    if not lines:
        raise BenchError(f"{path} has no lines to speak.")
    return lines


def _language(voice: str) -> str | None:
    """Whisper's language code from an espeak voice ("en-us" → "en"); None: detect."""
    code = voice.split("-")[0].split("+")[0]
    return code if len(code) == 2 and code.isalpha() else None


def speech_synthesize(
    *,
    lines: Path,
    out: Path,
    voice: str = DEFAULT_VOICE,
    words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
) -> Path:
    """Speak each ``{"text", "terms"}`` line of ``lines`` into ``out`` as WAV and write
    ``out/manifest.jsonl`` for the bench; return the manifest's path."""
    espeak = shutil.which(ESPEAK)
    if espeak is None:
        raise BenchError(f"{ESPEAK} is not installed; install it with: {ESPEAK_INSTALL}")
    spoken = _lines(lines)
    out.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(spoken))))
    entries = []
    for number, line in enumerate(spoken, start=1):
        wav = out / f"{number:0{width}d}.wav"
        try:
            # The text goes in on stdin, so a sentence starting with "-" is not an option.
            subprocess.run(
                [espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(wav), "--stdin"],
                input=line["text"],
                text=True,
                capture_output=True,
                check=True,
                timeout=ESPEAK_TIMEOUT_S,
            )
        except subprocess.CalledProcessError as exc:
            raise BenchError(
                f"{ESPEAK} failed on {lines}:{number} with voice {voice!r}: "
                f"{exc.stderr.strip() or exc}. List voices with: {ESPEAK} --voices"
            ) from None
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"{ESPEAK} took over {ESPEAK_TIMEOUT_S} s on {lines}:{number}."
            ) from None
        entries.append(
            {
                "audio": wav.name,
                "reference": line["text"],
                "language": line.get("language") or _language(voice),
                "terms": line.get("terms", []),
            }
        )
    manifest = out / MANIFEST_NAME
    manifest.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8"
    )
    return manifest
