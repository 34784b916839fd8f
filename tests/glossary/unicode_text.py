"""Hypothesis strategies for user text: arbitrary Unicode, with the characters that break
text code drawn often (digits of every script, combining marks, RTL, emoji sequences,
controls), glossary-like words, adversarial glossary terms and 10,000-character texts."""

from __future__ import annotations

import os
import signal

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from glossary.normalize import RuleSpec, TermSpec

# Reproducible in CI and quick on a loaded two-core machine: every property of these
# files together runs in well under a minute. SCRIBE_PROPERTY_EXAMPLES=2000 searches
# deeper (docs/development.md).
EXAMPLES = int(os.environ.get("SCRIBE_PROPERTY_EXAMPLES", "100"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# For 10,000-character texts, which take up to a second each; a failure is not shrunk (a
# repeated unit is short already, and each try may run to the time limit).
FEW = settings(
    PROPERTY,
    max_examples=max(EXAMPLES // 8, 8),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

# A 10,000-character text takes well under a second in each function of the glossary;
# minutes where a regex backtracks or a loop is quadratic. The bound leaves room for a
# loaded CI machine.
LONG_TEXT_S = 5.0


def timed(function, *args):
    """``function(*args)``, failed when it runs past LONG_TEXT_S: an alarm interrupts it
    (a regex too: the matching engine checks for signals), so a catastrophe fails the
    test rather than hanging it."""

    def interrupt(signum, frame):
        raise TimeoutError(f"{function.__name__} ran over {LONG_TEXT_S} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, LONG_TEXT_S)
    try:
        return function(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


DIGITS = (
    "0123456789"
    "٠١٢٣٤٥٦٧٨٩"  # Arabic-Indic
    "۰۱۲۳۴۵۶۷۸۹"  # Extended Arabic-Indic (Persian)
    "०१२३४५६७८९"  # Devanagari
    "০১২৩৪৫৬৭৮৯"  # Bengali
    "๐๑๒๓๔๕๖๗๘๙"  # Thai
    "０１２３４５６７８９"  # fullwidth
    "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉"  # super- and subscript
    "①②③⑨⑩⑳❶➀⒈⑴"  # circled, parenthesised, with a full stop
    "𝟎𝟏𝟗𝟘𝟡"  # mathematical
    "ⅠⅡⅫⅻↂ〇一二三十百千万"  # Roman numerals, CJK numerals
    "½¾⅓"
)
COMBINING = "\u0300\u0301\u0302\u0303\u0308\u0323\u0327\u034f\u0489\u20dd\u3099\u302e"
RTL = "שלום مرحبا ئۇيغۇرچە\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CONTROLS = "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1c\x1f\x7f\x85\u2028\u2029\u200b\u200d\ufeff\xad"
SPACES = " \xa0\u3000\u2009\u1680"
LATIN = "aAbBcCdDeEiIkKoOrRsStTxXyYzZ ÀÉéÑßẞİıſﬀﬁǄǅǆΣσςАБВДж"
HANGUL = "가각간힣쿠버네티스브이엘엘엠으로를은이는에서와ㄱㅏㅎ\u1100\u1161\u11a8"
PUNCTUATION = ".,-_'’!?…·/\\()[]{}+#&@*$%^|~`\"<>=:;"
EMOJI = ["👩\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "👍🏽", "🇰🇷", "1️⃣", "#️⃣", "🙂"]
CHARACTERS = DIGITS + COMBINING + RTL + CONTROLS + SPACES + LATIN + HANGUL + PUNCTUATION

# Words of the kind the matchers look for, and the placeholders and joiners they use.
WORDS = [
    "vLLM", "Kubernetes", "쿠버네티스", "브이엘엘엠으로", "qber needs", "pie torch", "CRPC",
    "gRPC", "A100", "one hundred", "a", "the", "I", "DCR", "float", "16", "429", "CO₂",
    "씨오투", "m²", "H₂O", "ÉÉ", "ＡＢ", "İİ", "Ǆ", "Thanks for watching",
    "시청해주셔서 감사합니다", "[EMAIL1]", "[PHONE1]", "a@b.co", "010-1234-5678", "…",
]  # fmt: skip

# Terms no operator meant to break anything with: digits of every script, chemistry and
# units, emoji, Korean, single letters, symbols only, long ones.
ADVERSARIAL_TERMS = [
    "CO₂", "m²", "H₂O", "١٢٣", "१२३", "１２３", "①", "x", "A", "I", "가", "쿠버네티스",
    "브이엘엘엠", "👩\u200d💻", "🙂", "C++", "C#", ".NET", "...", "-", "ÉCR", "ＡＢ", "Straße",
    "İstanbul", "e\u0301", "vLLM", "A100", "large-v3", "a" * 100, "ab-" * 33,
    "쿠" * 100, ". " * 50,
]  # fmt: skip


def _joined(pieces: list[str]) -> str:
    return "".join(pieces)


text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=CHARACTERS, max_size=80),
    st.lists(
        st.one_of(
            st.sampled_from(WORDS),
            st.sampled_from(EMOJI),
            st.text(alphabet=CHARACTERS, min_size=1, max_size=4),
            st.sampled_from([" ", " ", "-", "\n"]),
        ),
        max_size=24,
    ).map(_joined),
)


def _repeated(unit: str) -> str:
    return (unit * (10_000 // len(unit) + 1))[:10_000]


def _mixed(rnd) -> str:
    pieces, size = [], 0
    while size < 10_000:
        piece = rnd.choice([*WORDS, *EMOJI, rnd.choice(CHARACTERS), " ", " "])
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)[:10_000]


# 10,000 characters: a repeated unit (the input that makes a backtracking regex or a
# quadratic loop show itself), or words and characters drawn at random (text no
# repetition check sets apart, so every correction stage reads all of it).
long_text = st.one_of(
    st.text(alphabet=CHARACTERS, min_size=1, max_size=12).map(_repeated),
    st.sampled_from([*WORDS, *EMOJI]).map(lambda w: _repeated(w + " ")),
    st.sampled_from(["a", "1-", "a@", "a.", "…", "가", "\u0301", ".", "A ", "ab ab "]).map(
        _repeated
    ),
    st.randoms(use_true_random=False).map(_mixed),
)

term_text = st.one_of(
    st.sampled_from(ADVERSARIAL_TERMS),
    st.text(min_size=1, max_size=30),
    st.text(alphabet=CHARACTERS, min_size=1, max_size=30),
)
terms = st.lists(
    st.builds(
        TermSpec,
        term_text,
        st.lists(term_text, max_size=3).map(tuple),
        st.booleans(),
    ),
    max_size=6,
)

# A replacement as an operator may type one: plain text, or with backslashes that a regex
# reads as a template ("\1GB") and the other kinds must take as they are.
replacement = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=CHARACTERS, max_size=12),
    st.sampled_from(["", "API", r"\1GB", r"\g<0>", r"\2", r"\q", r"\g<name>", "\\", "C:\\x"]),
)
rules = st.lists(
    st.one_of(
        st.builds(RuleSpec, st.just("literal"), term_text, replacement, st.booleans()),
        st.builds(RuleSpec, st.just("acronym"), term_text, replacement, st.booleans()),
        st.builds(
            RuleSpec,
            st.just("regex"),
            st.sampled_from([r"(\d+)\s*기가", r"\bapi\b", r"(?i)gpu", r"\w+", r"^", r"(a|b)*c"]),
            replacement,
            st.booleans(),
        ),
    ),
    max_size=4,
)
