"""The transcription engine: the only package that talks to faster-whisper and CTranslate2.

Everything outside it works with the engine's own types and errors.
"""

from transcription.engine.audio import SAMPLE_RATE_HZ, MediaInfo, probe, stream_audio
from transcription.engine.devices import DeviceAssignment, DevicePlan, ModelSize, plan_devices
from transcription.engine.errors import (
    DevicePlanError,
    EngineError,
    MediaError,
    ModelNotFoundError,
    NoAudioStreamError,
    TranscriptionCancelled,
)
from transcription.engine.formats import CONTENT_TYPES, FORMATS, render
from transcription.engine.hardware import GpuInfo, HardwareProfile, detect_hardware
from transcription.engine.manager import LoadedModel, model_manager
from transcription.engine.pipeline import (
    LANGUAGE_NAMES,
    LANGUAGES,
    PIPELINE_VERSION,
    run_record,
    sampling_seed,
    transcribe,
)
from transcription.engine.registry import model_served_name, model_size, resolve_model
from transcription.engine.streaming import (
    SPEECH_REGIONS_PAD_S,
    BufferDecode,
    BufferRequest,
    SpeechTail,
    StepTimings,
    decode_buffer,
    decode_buffers,
    speech_regions,
    token_counter,
)
from transcription.engine.types import (
    Metrics,
    RunRecord,
    Segment,
    SpeechRegion,
    TranscribeOptions,
    Transcript,
    VadParameters,
    Word,
    transcript_from_dict,
)

__all__ = [
    "SAMPLE_RATE_HZ",
    "SPEECH_REGIONS_PAD_S",
    "BufferDecode",
    "BufferRequest",
    "StepTimings",
    "decode_buffer",
    "SpeechTail",
    "decode_buffers",
    "speech_regions",
    "token_counter",
    "CONTENT_TYPES",
    "FORMATS",
    "LANGUAGE_NAMES",
    "LANGUAGES",
    "PIPELINE_VERSION",
    "DeviceAssignment",
    "DevicePlan",
    "DevicePlanError",
    "EngineError",
    "GpuInfo",
    "HardwareProfile",
    "LoadedModel",
    "MediaError",
    "MediaInfo",
    "Metrics",
    "ModelNotFoundError",
    "ModelSize",
    "NoAudioStreamError",
    "RunRecord",
    "Segment",
    "SpeechRegion",
    "TranscribeOptions",
    "Transcript",
    "TranscriptionCancelled",
    "VadParameters",
    "Word",
    "detect_hardware",
    "model_manager",
    "model_served_name",
    "model_size",
    "plan_devices",
    "probe",
    "render",
    "resolve_model",
    "run_record",
    "sampling_seed",
    "stream_audio",
    "transcribe",
    "transcript_from_dict",
]
