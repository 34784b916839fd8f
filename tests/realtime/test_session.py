"""StreamingSession with scripted hypotheses: no model, no I/O.

The fake audio carries its own clock: sample i has the value i, so a scripted transcriber
knows which stretch of the session it is given and returns the words spoken there, with
the newest words garbled ("…zz<n>", different at every call) until ``settle_s`` of audio
has followed them, as a real model's tail wavers. ``Rehearsed`` instead returns set
hypotheses in turn, for the steps where word times move between decodes.
"""

from __future__ import annotations

import numpy as np
import pytest

from realtime.agreement import MAX_TENTATIVE_AGE_S
from realtime.live_types import FinalSegment, TimedWord
from realtime.session import (
    FIRST_CHUNK_S,
    KEEP_CONTEXT_S,
    LEFT_CONTEXT_S,
    MAX_BUFFER_S,
    MAX_WORD_S,
    PAUSE_ONSET_S,
    StreamingSession,
)
from transcription.engine.audio import SAMPLE_RATE_HZ


def script(*sentences: tuple[float, list[str]], word_s: float = 0.4) -> list[TimedWord]:
    """Words spoken back to back from each sentence's start time."""
    words = []
    for start, texts in sentences:
        for i, text in enumerate(texts):
            words.append(TimedWord(start + i * word_s, start + (i + 1) * word_s, f" {text}", 0.9))
    return words


class ScriptedModel:
    """``invented``: words the model writes where nobody spoke (VAD finds no speech there),
    as Whisper writes " Thank you." into silence."""

    def __init__(
        self, words: list[TimedWord], settle_s: float = 1.0, invented: list[TimedWord] = ()
    ) -> None:
        self.words, self.settle_s, self.invented = words, settle_s, list(invented)
        self.prompts: list[str] = []
        self.buffer_starts: list[float] = []
        self.written: list[str] = []  # every word returned, as written
        self.calls = 0

    def transcribe(self, audio: np.ndarray, prompt: str) -> list[TimedWord]:
        self.calls += 1
        self.prompts.append(prompt)
        start = audio[0] / SAMPLE_RATE_HZ
        self.buffer_starts.append(start)
        end = start + audio.shape[0] / SAMPLE_RATE_HZ
        heard = []
        for w in self.words:
            if w.end <= start or w.start >= end:
                continue
            text = w.text if w.end <= end - self.settle_s else f"{w.text}zz{self.calls}"
            heard.append(
                TimedWord(max(w.start, start) - start, min(w.end, end) - start, text, w.probability)
            )
        for w in self.invented:
            if w.start < end and w.end > start:
                heard.append(
                    TimedWord(max(w.start, start) - start, min(w.end, end) - start, w.text)
                )
        heard.sort(key=lambda w: w.start)
        self.written += [w.text for w in heard]
        return heard

    def regions(self, audio: np.ndarray) -> list[tuple[float, float]]:
        start = audio[0] / SAMPLE_RATE_HZ if audio.size else 0.0
        end = start + audio.shape[0] / SAMPLE_RATE_HZ
        spans: list[tuple[float, float]] = []
        for w in self.words:
            if w.end <= start or w.start >= end:
                continue
            a, b = max(w.start, start) - start, min(w.end, end) - start
            if spans and a - spans[-1][1] < 0.05:
                spans[-1] = (spans[-1][0], b)
            else:
                spans.append((a, b))
        return spans


class ScriptedTail:
    """The scripted speech's silence as ``SpeechTail`` reports it: where the last stretch
    of words (``ScriptedModel.regions``) ended, once the audio fed runs past it."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model, self.end = model, 0.0

    def feed(self, samples: np.ndarray) -> None:
        self.end = (samples[-1] + 1) / SAMPLE_RATE_HZ

    @property
    def silence_start_s(self) -> float | None:
        spans = self.model.regions(np.arange(int(self.end * SAMPLE_RATE_HZ), dtype=np.float32))
        return spans[-1][1] if spans and spans[-1][1] < self.end - 1e-9 else None


class Rehearsed:
    """A transcriber that returns set hypotheses (session time) in turn, the last one from
    then on, each cut to the buffer it is given."""

    def __init__(self, *hypotheses: list[TimedWord]) -> None:
        self.hypotheses = hypotheses
        self.calls = 0

    def transcribe(self, audio: np.ndarray, prompt: str) -> list[TimedWord]:
        words = self.hypotheses[min(self.calls, len(self.hypotheses) - 1)]
        self.calls += 1
        start = audio[0] / SAMPLE_RATE_HZ
        end = start + audio.shape[0] / SAMPLE_RATE_HZ
        return [
            TimedWord(max(w.start, start) - start, min(w.end, end) - start, w.text)
            for w in words
            if start < w.end and w.start < end
        ]


def timed(*words: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(start, end, f" {text}") for text, start, end in words]


def feed(session: StreamingSession, start_s: float, end_s: float) -> None:
    """Insert the clock-carrying audio of [start_s, end_s)."""
    session.insert_audio(
        np.arange(int(start_s * SAMPLE_RATE_HZ), int(end_s * SAMPLE_RATE_HZ), dtype=np.float32)
    )


def play(session: StreamingSession, spans: list[tuple[float, float]]) -> list[FinalSegment]:
    """Feed each span of the clock-carrying audio and step after it; then finish."""
    finals: list[FinalSegment] = []
    for start, end in spans:
        feed(session, start, end)
        finals += session.process().finals
    return finals + list(session.finish().finals)


def stream(session: StreamingSession, seconds: float, chunk_s: float = 0.5, start_s: float = 0.0):
    """Feed the clock-carrying audio in chunks, processing after each; collect results."""
    finals: list[FinalSegment] = []
    partials = []
    buffers = []
    chunk = int(chunk_s * SAMPLE_RATE_HZ)
    for offset in range(int(start_s * SAMPLE_RATE_HZ), int(seconds * SAMPLE_RATE_HZ), chunk):
        session.insert_audio(np.arange(offset, offset + chunk, dtype=np.float32))
        result = session.process()
        finals += result.finals
        if result.partial:
            partials.append(result.partial)
        buffers.append(session.buffer_s)
    return finals, partials, buffers


def words_of(finals: list[FinalSegment]) -> list[str]:
    return [w.text.strip() for f in finals for w in f.words]


def test_committed_text_is_never_retracted_and_comes_out_in_order():
    spoken = script(
        (0.5, ["we", "deploy", "the", "API", "with", "vLLM", "on", "Kubernetes"]),
        (5.0, ["then", "we", "measure", "the", "latency", "of", "every", "request"]),
    )
    model = ScriptedModel(spoken, settle_s=0.5)
    session = StreamingSession(model.transcribe, model.regions)

    finals, partials, _ = stream(session, 10.0)
    finals += session.finish().finals

    assert words_of(finals) == [w.text.strip() for w in spoken]
    assert [f.index for f in finals] == list(range(len(finals)))
    assert all(a.end <= b.start for a, b in zip(finals, finals[1:], strict=False))
    assert not any("zz" in w for w in words_of(finals)), "an unstable word was committed"
    assert any("zz" in p.text for p in partials), "partials show the wavering tail"


def test_a_pause_closes_the_open_segment_with_exactly_what_was_said_before_it():
    first = ["so", "my", "fellow", "Americans"]
    spoken = script((0.2, first), (4.0, ["ask", "not", "what", "your", "country", "can", "do"]))
    model = ScriptedModel(spoken, settle_s=0.5)
    session = StreamingSession(model.transcribe, model.regions)

    finals, _, _ = stream(session, 3.5)  # the second sentence has not started yet

    assert [f.text for f in finals] == ["so my fellow Americans"]
    assert finals[0].start == pytest.approx(0.2) and finals[0].end == pytest.approx(1.8)


def test_the_buffer_is_trimmed_after_each_commit():
    spoken = script((0.0, [f"word{i}" for i in range(40)]), word_s=0.5)
    model = ScriptedModel(spoken)
    session = StreamingSession(model.transcribe, model.regions)

    _, _, buffers = stream(session, 20.0)

    # Commits happen every step once words settle, so the buffer holds the kept context
    # (KEEP_CONTEXT_S of committed speech, from a word's start) plus the settle delay
    # instead of growing with the session.
    bound = KEEP_CONTEXT_S + MAX_WORD_S + 2.0
    assert max(buffers[12:]) < bound
    assert buffers[-1] < bound


def test_a_session_without_pauses_or_agreement_stays_within_its_buffer():
    spoken = script((0.0, [f"w{i}" for i in range(400)]), word_s=0.3)
    model = ScriptedModel(spoken, settle_s=1000.0)  # never agrees, never pauses
    session = StreamingSession(model.transcribe, model.regions)

    finals, _, buffers = stream(session, 120.0)

    assert max(buffers) <= MAX_BUFFER_S + 0.5
    assert finals, "forced cuts still produce finals"
    texts = words_of(finals)
    assert len(texts) == len(set(texts)), "no word is finalised twice"


def test_finish_flushes_everything_still_open():
    spoken = script((0.0, ["last", "words", "before", "hanging", "up"]))
    model = ScriptedModel(spoken, settle_s=100.0)
    session = StreamingSession(model.transcribe)

    finals, _, _ = stream(session, 2.5)
    flushed = session.finish()

    assert finals == []
    assert [f.text.replace(f"zz{model.calls}", "") for f in flushed.finals] == [
        "last words before hanging up"
    ]
    assert flushed.partial is None
    assert session.buffer_s == 0.0


def test_committed_text_before_the_buffer_is_fed_back_as_the_prompt():
    words = [f"term{i}" for i in range(30)]
    spoken = script((0.0, words), word_s=0.5)
    model = ScriptedModel(spoken)
    session = StreamingSession(model.transcribe, model.regions, initial_prompt="Glossary:")

    stream(session, 15.0)

    assert model.prompts[0] == "Glossary:"
    assert any("term0 term1" in p for p in model.prompts[1:])
    # A committed word still inside the buffer is not in the prompt: Whisper would take
    # it as said already and skip the audio that repeats it.
    for prompt, start in zip(model.prompts, model.buffer_starts, strict=True):
        said = {w.text.strip() for w in spoken if w.end <= start + 0.01}
        assert set(prompt.removeprefix("Glossary:").split()) <= said


def test_nothing_is_decoded_until_a_chunk_of_new_audio_arrived():
    model = ScriptedModel(script((0.0, ["hello"])))
    session = StreamingSession(model.transcribe)

    session.insert_audio(np.arange(0, 8000, dtype=np.float32))
    assert session.process().decoded is False
    session.insert_audio(np.arange(8000, 16000, dtype=np.float32))
    assert session.process().decoded is True
    assert model.calls == 1


def test_settled_words_become_final_within_seconds_even_without_pauses():
    spoken = script((0.0, [f"w{i}" for i in range(100)]), word_s=0.4)
    model = ScriptedModel(spoken, settle_s=0.5)
    session = StreamingSession(model.transcribe, model.regions)
    emitted: list[tuple[float, FinalSegment]] = []
    chunk = 8000
    for offset in range(0, 40 * SAMPLE_RATE_HZ, chunk):
        session.insert_audio(np.arange(offset, offset + chunk, dtype=np.float32))
        now = (offset + chunk) / SAMPLE_RATE_HZ
        emitted += [(now, f) for f in session.process().finals]

    lags = [now - w.end for now, f in emitted for w in f.words]
    assert len(lags) > 80
    assert max(lags) <= 4.0, "no word waits for a pause that never comes"


def test_words_the_model_writes_into_silence_are_never_committed():
    spoken = script((0.0, ["we", "ship", "it", "today"]))  # speech ends at 1.6 s
    filler = script((2.4, ["Thank", "you."]))  # 0.8 s into the silence after it
    model = ScriptedModel(spoken, settle_s=0.5, invented=filler)
    session = StreamingSession(model.transcribe, model.regions)

    finals, partials, _ = stream(session, 6.0)
    finals += session.finish().finals

    assert " Thank" in model.written, "the model did write the filler into a decoded buffer"
    assert words_of(finals) == ["we", "ship", "it", "today"]
    assert not any("Thank" in p.text for p in partials)


def test_a_buffer_without_speech_is_not_decoded_and_is_cut_to_its_left_context():
    start = KEEP_CONTEXT_S + 2.2
    model = ScriptedModel(script((start, ["hello", "again"])), settle_s=0.5)
    session = StreamingSession(model.transcribe, model.regions)

    _, _, buffers = stream(session, start - 0.2)  # due steps over silence only

    assert model.calls == 0
    assert buffers[-1] <= LEFT_CONTEXT_S + 1.0
    assert max(buffers) <= KEEP_CONTEXT_S + 1.0, "silence never piles up in the buffer"

    finals, _, _ = stream(session, start + 3.0, start_s=start - 0.2)
    finals += session.finish().finals

    assert model.calls > 0
    assert words_of(finals) == ["hello", "again"]


def test_a_short_word_after_the_committed_text_is_kept_when_its_time_moves_earlier():
    model = Rehearsed(
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6)),
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6), ("it", 1.6, 1.75)),
        # Decoded from inside the left context, "it" now ends where "deploy" did.
        timed(("deploy", 1.1, 1.45), ("it", 1.45, 1.6), ("now", 2.4, 2.8)),
    )
    session = StreamingSession(model.transcribe)
    finals = play(session, [(0.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)])

    assert model.calls == 4
    assert words_of(finals) == ["we", "deploy", "it", "now"]


def test_the_committed_words_a_new_hypothesis_repeats_are_dropped_by_their_text():
    said = timed(
        ("without", 0.0, 0.4),
        ("limitation", 0.4, 1.2),
        ("the", 1.2, 1.35),
        ("rights", 1.35, 1.6),
        ("to", 1.6, 1.8),
        ("use", 1.8, 2.2),
    )
    model = Rehearsed(
        said[:4],
        said,  # agrees on "without limitation the rights", cut 0.5 s before its end
        # The buffer now starts inside "limitation", heard as "in"; the repeated words are
        # placed later than before, "rights" past the committed end.
        timed(
            ("in", 1.1, 1.2),
            ("the", 1.3, 1.5),
            ("rights", 1.5, 1.75),
            ("to", 1.75, 1.95),
            ("use", 1.95, 2.3),
            ("copy", 2.3, 2.7),
        ),
    )
    session = StreamingSession(model.transcribe)
    finals = play(session, [(0.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)])

    assert model.calls == 4
    assert words_of(finals) == ["without", "limitation", "the", "rights", "to", "use", "copy"]


def test_words_are_sent_as_a_final_in_the_step_that_commits_them():
    model = Rehearsed(
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6)),
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6), ("it", 1.6, 1.75), ("now", 2.4, 2.8)),
    )
    session = StreamingSession(model.transcribe)  # no VAD: no pause ever closes a segment

    feed(session, 0.0, 2.0)
    first = session.process()
    feed(session, 2.0, 3.0)
    second = session.process()

    assert first.finals == () and first.partial is not None
    assert first.partial.text == "we deploy"
    assert [f.text for f in second.finals] == ["we deploy"]
    assert second.partial is not None and second.partial.text == "it now"


class EndsAtTheContext(ScriptedModel):
    """Whisper after a sentence and a pause: while its buffer starts with committed
    speech, it writes that speech again and stops there."""

    def __init__(self, words: list[TimedWord], sentence_end_s: float) -> None:
        super().__init__(words, settle_s=0.5)
        self.sentence_end_s = sentence_end_s

    def transcribe(self, audio: np.ndarray, prompt: str) -> list[TimedWord]:
        heard = super().transcribe(audio, prompt)
        start = audio[0] / SAMPLE_RATE_HZ
        if start < self.sentence_end_s:
            return [w for w in heard if w.end + start <= self.sentence_end_s]
        return heard


def test_speech_after_a_pause_is_heard_even_when_the_kept_context_makes_the_model_stop():
    spoken = script((0.0, ["first", "sentence", "ends"]), (4.0, ["then", "more", "follows"]))
    model = EndsAtTheContext(spoken, sentence_end_s=1.2)
    session = StreamingSession(model.transcribe, model.regions)

    finals, _, _ = stream(session, 8.0)
    finals += session.finish().finals

    assert words_of(finals) == ["first", "sentence", "ends", "then", "more", "follows"]


def test_the_committed_speech_before_new_audio_is_kept_as_context():
    spoken = script((0.0, [f"word{i}" for i in range(20)]), word_s=0.5)
    model = ScriptedModel(spoken)
    session = StreamingSession(model.transcribe, model.regions)

    stream(session, 10.0)

    # Seconds of it, not a word or two: a short buffer loses the words' context.
    assert session.buffer_s >= 3.0


def test_a_word_the_hypotheses_never_agree_on_is_final_once_it_is_max_tentative_age_old():
    # Each decode hears the word differently: only its age can commit it, as the latest
    # hypothesis has it. It ends at 0.5 s: 2.5 s old (MAX_TENTATIVE_AGE_S) at 3.0 s.
    model = Rehearsed(timed(("won", 0.0, 0.5)), timed(("one", 0.0, 0.5)), timed(("juan", 0.0, 0.5)))
    session = StreamingSession(model.transcribe)  # no VAD: no pause ever commits it

    steps = []
    for start in (0.0, 1.0, 2.0):
        feed(session, start, start + 1.0)
        steps.append(session.process())

    assert MAX_TENTATIVE_AGE_S == 2.5
    assert [s.finals for s in steps[:2]] == [(), ()]
    assert [s.partial.text for s in steps[:2] if s.partial] == ["won", "one"]
    assert [f.text for f in steps[2].finals] == ["juan"]


def test_a_hypothesis_that_rewords_the_kept_context_entirely_adds_only_what_follows_it():
    model = Rehearsed(
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6)),
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6), ("it", 1.6, 1.75), ("now", 2.4, 2.8)),
        # No word of the kept "we deploy" is heard the same: nothing aligns by text, so
        # the words before the committed end (1.6 s) are taken for it by their times.
        timed(("whee", 0.5, 1.0), ("deplore", 1.0, 1.6), ("it", 1.6, 1.75), ("now", 2.4, 2.8)),
    )
    session = StreamingSession(model.transcribe)
    finals = play(session, [(0.0, 2.0), (2.0, 3.0), (3.0, 4.0)])

    assert model.calls == 3
    assert words_of(finals) == ["we", "deploy", "it", "now"]


def test_a_committed_word_the_new_hypothesis_mishears_is_not_committed_again():
    model = Rehearsed(
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6)),
        timed(("we", 0.5, 1.0), ("deploy", 1.0, 1.6), ("it", 1.6, 1.75), ("now", 2.4, 2.8)),
        # The kept "deploy" is heard as "deplore": it stands for the committed word, it is
        # not new speech, though only "we" aligns by text.
        timed(("we", 0.5, 1.0), ("deplore", 1.0, 1.5), ("it", 1.6, 1.75), ("now", 2.4, 2.8)),
    )
    session = StreamingSession(model.transcribe)
    finals = play(session, [(0.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)])

    assert model.calls == 4
    assert words_of(finals) == ["we", "deploy", "it", "now"]


def test_a_word_said_again_after_a_pause_is_new_though_it_was_committed_before():
    # "one" was committed long ago and is out of the buffer: only the kept "two" is
    # aligned with, so the second "one" is new speech, not a repeat of the first.
    model = Rehearsed(
        timed(("one", 0.5, 1.0), ("two", 6.5, 7.0), ("one", 7.5, 8.0), ("more", 8.0, 8.5))
    )
    session = StreamingSession(model.transcribe)  # no VAD
    finals = play(session, [(0.0, 2.0), *((s, s + 1.0) for s in range(2, 10))])

    assert words_of(finals) == ["one", "two", "one", "more"]


def test_a_new_word_placed_before_the_committed_end_is_kept_when_the_last_two_are_misheard():
    model = Rehearsed(
        timed(("we", 0.5, 1.0), ("ship", 1.0, 1.4), ("the", 1.4, 1.6), ("build", 1.6, 2.0)),
        timed(
            ("we", 0.5, 1.0),
            ("ship", 1.0, 1.4),
            ("the", 1.4, 1.6),
            ("build", 1.6, 2.0),
            ("at", 2.0, 2.15),
            ("noon", 2.6, 3.0),
        ),
        # The kept "the build" is heard as "a bill" and every time moves earlier: "at" now
        # ends before the committed end (2.0 s). Aligned by text through "ship", the two
        # misheard words stand for the committed ones and what follows them is new.
        timed(
            ("we", 0.5, 1.0),
            ("ship", 1.0, 1.4),
            ("a", 1.4, 1.5),
            ("bill", 1.5, 1.8),
            ("at", 1.8, 1.95),
            ("noon", 2.6, 3.0),
        ),
    )
    session = StreamingSession(model.transcribe)
    finals = play(session, [(0.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)])

    assert model.calls == 4
    assert words_of(finals) == ["we", "ship", "the", "build", "at", "noon"]


def test_the_end_of_speech_is_reported_once_after_the_pause_with_every_word_final():
    spoken = script((0.2, ["so", "my", "fellow", "Americans"]), (4.0, ["ask", "not"]))
    model = ScriptedModel(spoken, settle_s=0.3)
    session = StreamingSession(model.transcribe, model.regions, min_chunk_s=0.25, pause_s=0.4)
    ended, finals = [], []
    for offset in range(0, int(6.0 * SAMPLE_RATE_HZ), SAMPLE_RATE_HZ // 4):
        session.insert_audio(np.arange(offset, offset + SAMPLE_RATE_HZ // 4, dtype=np.float32))
        result = session.process()
        finals += result.finals
        if result.speech_ended_at is not None:
            ended.append((offset / SAMPLE_RATE_HZ, result.speech_ended_at, len(finals)))

    # Once per stretch of speech, at its last word's end, within a step of the pause, and
    # every word said before it is final by then.
    assert [round(at, 2) for _, at, _ in ended] == [1.8, 4.8]
    assert ended[0][0] <= 1.8 + 0.4 + 0.25 and ended[1][0] <= 4.8 + 0.4 + 0.25
    assert words_of(finals[: ended[0][2]]) == ["so", "my", "fellow", "Americans"]
    assert words_of(finals[: ended[1][2]])[-2:] == ["ask", "not"]


def test_a_finalize_after_the_last_word_was_heard_flushes_without_decoding_and_goes_on():
    spoken = script((0.2, ["so", "my", "fellow"]), (3.0, ["ask", "not"]))
    model = ScriptedModel(spoken, settle_s=0.05)
    session = StreamingSession(model.transcribe, model.regions, min_chunk_s=0.5)
    finals: list[FinalSegment] = []
    for start in (0.0, 0.5, 1.0):
        feed(session, start, start + 0.5)
        finals += session.process().finals
    calls = model.calls
    feed(session, 1.5, 1.7)  # silence after the last word (it ends at 1.4 s)

    request = session.decode_request(finishing=True)
    finals += session.finish_with(None, ending=False).finals

    assert request is None and model.calls == calls, "the flush decoded again"
    assert words_of(finals) == ["so", "my", "fellow"]
    finals += play(session, [(1.7, 2.5), (2.5, 3.5), (3.5, 4.5)])
    assert words_of(finals) == ["so", "my", "fellow", "ask", "not"]


def test_a_step_that_runs_behind_still_reports_the_pause_inside_its_audio():
    spoken = script((0.2, ["so", "my", "fellow"]), (2.4, ["ask", "not"]))
    model = ScriptedModel(spoken, settle_s=0.05)
    session = StreamingSession(model.transcribe, model.regions, min_chunk_s=3.0, pause_s=0.4)

    feed(session, 0.0, 3.2)  # one step: the first stretch, the pause, the second
    result = session.process()

    assert result.speech_ended_at == pytest.approx(1.4)
    assert words_of(list(result.finals)) == ["so", "my", "fellow"]


def frames(session: StreamingSession, seconds: float, frame_s: float = 0.05):
    """Feed the clock-carrying audio in real-time frames, stepping after each, as the
    realtime worker does; yield (audio end, step result)."""
    frame = int(frame_s * SAMPLE_RATE_HZ)
    for offset in range(0, int(seconds * SAMPLE_RATE_HZ), frame):
        session.insert_audio(np.arange(offset, offset + frame, dtype=np.float32))
        yield (offset + frame) / SAMPLE_RATE_HZ, session.process()


def paused_session(model: ScriptedModel, *, watch: bool) -> StreamingSession:
    """A session stepped each second with a 0.4 s pause, its pause watched or not."""
    return StreamingSession(
        model.transcribe,
        model.regions,
        min_chunk_s=1.0,
        pause_s=0.4,
        watch_pause=ScriptedTail(model) if watch else None,
    )


def test_a_watched_pause_is_reported_as_soon_as_vad_hears_it_not_at_the_next_step():
    spoken = script((0.2, ["so", "my", "fellow", "Americans"]))  # the last word ends at 1.8 s

    def ended(watch: bool) -> tuple[float, list[str], int]:
        # The model hears a word right once the pause's onset follows it.
        model = ScriptedModel(spoken, settle_s=PAUSE_ONSET_S)
        session = paused_session(model, watch=watch)
        finals: list[FinalSegment] = []
        for at, result in frames(session, 4.0):
            finals += result.finals
            if result.speech_ended_at is not None:
                return at, words_of(finals), model.calls
        raise AssertionError("the end of speech was never reported")

    watched, words, decodes = ended(True)
    stepped, _, _ = ended(False)

    # A decode as the pause starts (after PAUSE_ONSET_S), which hears every word; the end
    # reported once the pause is long enough, without decoding again.
    assert watched == pytest.approx(1.8 + 0.4, abs=0.05 + 1e-6), watched  # within a frame
    # Steps at 0.5 s (the first words: FIRST_CHUNK_S) and 1.5 s, a decode at the onset,
    # none to report the end.
    assert decodes == 3
    assert stepped == pytest.approx(2.5), "unwatched, the pause waits for a step"
    assert words == ["so", "my", "fellow", "Americans"]


def test_watching_for_a_pause_decodes_no_more_while_speech_goes_on():
    spoken = script((0.0, [f"w{i}" for i in range(12)]))  # 4.8 s without a pause

    def decodes(watch: bool) -> int:
        model = ScriptedModel(spoken, settle_s=0.3)
        session = paused_session(model, watch=watch)
        for _ in frames(session, 4.0):
            pass
        return model.calls

    assert decodes(True) == decodes(False) == 4


def test_steps_between_agreement_steps_show_their_hypothesis_and_commit_nothing():
    # Decodes every 0.5 s; the agreement compares hypotheses AGREE_S (a second) apart. The
    # decodes at 1.5 s and 2.0 s agree with each other, but only 2.0 s is an agreement step,
    # and it compares with 1.0 s: nothing is committed until 3.0 s agrees with 2.0 s.
    ship, shop = (
        timed(("ship", 0.0, 0.4), ("it", 0.4, 0.7)),
        timed(("shop", 0.0, 0.4), ("it", 0.4, 0.7)),
    )
    model = Rehearsed(ship, shop, ship, ship, ship, ship)
    session = StreamingSession(model.transcribe, None, min_chunk_s=0.5)  # AGREE_S is 1 s

    results = []
    for start in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5):
        feed(session, start, start + 0.5)
        results.append(session.process())

    assert model.calls == 6
    shown = [r.partial.text if r.partial else None for r in results[:3]]
    assert shown == ["ship it", "shop it", "ship it"]
    assert all(not r.finals for r in results[:5]), "two decodes half a second apart agreed"
    assert words_of(list(results[5].finals)) == ["ship", "it"]


def test_the_first_words_after_a_pause_are_decoded_after_half_a_step():
    spoken = script((0.1, ["we", "ship"]), (4.1, ["at", "noon"]))  # 0.1-0.9 s, 4.1-4.9 s
    model = ScriptedModel(spoken, settle_s=0.3)
    session = StreamingSession(model.transcribe, model.regions, pause_s=0.4)

    first_partials = []
    for at, result in frames(session, 6.0):
        if result.partial is not None and (not first_partials or at - first_partials[-1] > 2):
            first_partials.append(at)

    # Each utterance's first partial comes FIRST_CHUNK_S into it, not a whole step later.
    assert first_partials == [pytest.approx(FIRST_CHUNK_S), pytest.approx(4.5)], first_partials
