"""How numbers are said: English cardinals and digit by digit, Sino-Korean numbers."""

from __future__ import annotations

import re

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = frozenset([*_ONES, *_TENS[2:], "hundred", "thousand", "oh"])
_SINO_DIGITS = "영일이삼사오육칠팔구"
# Only ASCII digits are a number to say: str.isdigit() and the regex \d also take "₂",
# "²" (CO₂, m²: no number int() reads) and other scripts' digits, read by no one here.
DIGITS = "[0-9]"
_DIGITS = re.compile(DIGITS + "+")


def is_digits(text: str) -> bool:
    """Whether ``text`` is a number written in ASCII digits, the only digits said as one."""
    return _DIGITS.fullmatch(text) is not None


def has_digit(text: str) -> bool:
    """Whether ``text`` has an ASCII digit in it."""
    return _DIGITS.search(text) is not None


def _cardinal(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + _cardinal(n % 100)
        return _ONES[n // 100] + " hundred" + rest
    rest = "" if n % 1000 == 0 else " " + _cardinal(n % 1000)
    return _cardinal(n // 1000) + " thousand" + rest


def _sino_korean(n: int) -> str:
    out = []
    for value, unit in ((1000, "천"), (100, "백"), (10, "십")):
        digit, n = divmod(n, value)
        if digit:
            out.append(("" if digit == 1 else _SINO_DIGITS[digit]) + unit)
    if n or not out:
        out.append(_SINO_DIGITS[n])
    return "".join(out)


def number_words(digits: str) -> tuple[list[str], list[str]]:
    """Return the ways English and Korean speakers say a run of ASCII digits (English
    first); anything else is refused (``is_digits`` says which text is one)."""
    if not is_digits(digits):
        raise ValueError(f"not a number in ASCII digits: {digits!r}")
    english = [" ".join(_ONES[int(d)] for d in digits)]
    korean = ["".join(_SINO_DIGITS[int(d)] for d in digits)]
    if len(digits) <= 4 and (digits == "0" or not digits.startswith("0")):
        n = int(digits)
        cardinal = _cardinal(n)
        english.insert(0, cardinal)
        korean.insert(0, _sino_korean(n))
        if cardinal.startswith(("one hundred", "one thousand")):
            # "a hundred", but not a bare "hundred": after a letter, "A" + "hundred" would
            # make every "a hundred apples" an A100.
            english.append("a" + cardinal[3:])
        if len(digits) in (3, 4) and n % 100 and n % 1000 >= 100:
            head, tail = divmod(n, 100)
            tail_words = _cardinal(tail) if tail >= 10 else "oh " + _ONES[tail]
            english.append(f"{_cardinal(head)} {tail_words}")  # "four twenty nine"
    return list(dict.fromkeys(english)), list(dict.fromkeys(korean))
