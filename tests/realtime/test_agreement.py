"""LocalAgreement-2 on its own: hypotheses in, committed words and finals out; no audio."""

from __future__ import annotations

from realtime.agreement import MAX_TENTATIVE_AGE_S, Agreement
from realtime.live_types import TimedWord


def words(*spoken: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(start, end, f" {text}", 0.9) for text, start, end in spoken]


def test_what_two_consecutive_hypotheses_agree_on_is_committed_and_the_rest_stays_tentative():
    agreement = Agreement()

    first = agreement.agree(words(("we", 0.0, 0.4), ("deploy", 0.4, 0.8)), now_s=1.0)
    second = agreement.agree(words(("we", 0.0, 0.4), ("deployed", 0.4, 0.8)), now_s=2.0)

    partial = agreement.partial()
    assert first == []
    assert [w.text for w in second] == [" we"]
    assert agreement.committed_end_s == 0.4
    assert partial is not None and partial.text == "we deployed"


def test_agreement_ignores_case_and_punctuation():
    agreement = Agreement()
    agreement.agree(words(("Hello", 0.0, 0.4)), now_s=1.0)

    committed = agreement.agree(words(("hello,", 0.0, 0.4)), now_s=1.5)

    assert [w.text for w in committed] == [" hello,"], "the latest hypothesis's spelling"


def test_a_word_never_agreed_on_is_committed_once_it_is_old_enough():
    agreement = Agreement()
    agreement.agree(words(("alpha", 0.0, 0.5)), now_s=1.0)

    committed = agreement.agree(words(("alfa", 0.0, 0.5)), now_s=0.5 + MAX_TENTATIVE_AGE_S)

    assert [w.text for w in committed] == [" alfa"]


def test_committed_words_close_into_numbered_finals_and_are_never_sent_twice():
    agreement = Agreement()
    agreement.agree(words(("one", 0.0, 0.4), ("two", 0.4, 0.8)), now_s=1.0)
    agreement.agree(words(("one", 0.0, 0.4), ("two", 0.4, 0.8)), now_s=2.0)

    [final] = agreement.close()
    again = agreement.close()
    agreement.agree(words(("three", 1.0, 1.4)), now_s=2.5)
    agreement.flush()
    [last] = agreement.close()

    assert (final.index, final.text, final.start, final.end) == (0, "one two", 0.0, 0.8)
    assert again == []
    assert (last.index, last.text) == (1, "three")
    assert agreement.partial() is None


def test_a_hypothesis_repeating_the_kept_context_is_aligned_by_text_not_by_time():
    agreement = Agreement()
    said = words(("permission", 0.0, 0.6), ("notice", 0.6, 1.0))
    agreement.agree(said, now_s=1.2)
    agreement.agree(said, now_s=2.2)

    # The next decode says the kept words again, their times moved, then something new.
    heard = words(("permission", 0.1, 0.5), ("notice", 0.5, 1.2), ("shall", 1.2, 1.5))
    new = agreement.past_committed(heard, buffer_start_s=0.0)

    assert [w.text for w in new] == [" shall"]


def test_a_pause_commits_the_tentative_words_that_start_before_it():
    agreement = Agreement()
    agreement.agree(words(("so", 0.0, 0.4), ("then", 0.4, 1.1), ("later", 2.0, 2.4)), now_s=2.5)

    committed = agreement.commit_starting_before(1.0)

    assert [w.text for w in committed] == [" so", " then"]
    assert agreement.pending_start_s == 0.0
    assert agreement.said_before(1.1) == " so then"


def test_a_previewed_hypothesis_is_shown_but_the_next_agreement_compares_with_the_one_before():
    agreement = Agreement()
    agreement.agree(words(("ship", 0.0, 0.4), ("it", 0.4, 0.6)), now_s=1.0)

    agreement.preview(words(("shop", 0.0, 0.4), ("it", 0.4, 0.6)))
    shown = agreement.partial()
    committed = agreement.agree(words(("ship", 0.0, 0.4), ("it", 0.4, 0.6)), now_s=2.0)

    assert shown is not None and shown.text == "shop it"
    assert [w.text for w in committed] == [" ship", " it"], "compared with the preview"


def test_two_previews_that_agree_commit_nothing():
    agreement = Agreement()
    agreement.agree(words(("we", 0.0, 0.4)), now_s=0.5)

    agreement.preview(words(("we", 0.0, 0.4), ("shipped", 0.4, 0.8)))
    agreement.preview(words(("we", 0.0, 0.4), ("shipped", 0.4, 0.8)))

    assert agreement.committed_end_s == 0.0
    assert agreement.partial() is not None and agreement.partial().text == "we shipped"
