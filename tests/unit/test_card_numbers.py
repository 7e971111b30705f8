"""The one card-number detector: a card number in any common layout, anywhere in a text, is found;
random keys (uuid4) are never taken for one."""

import unicodedata
import uuid

from hypothesis import given
from hypothesis import strategies as st

from roombook.services.payments import CARD_DIGITS, CARD_GROUPINGS, CARD_SEPARATORS, looks_like_card_number, luhn_valid

ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def card_numbers(length: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=length - 1, max_size=length - 1).map(with_check_digit)


@st.composite
def written_card_numbers(draw: st.DrawFn) -> str:
    """A Luhn-valid card number as people write it: contiguous, or grouped with one separator."""
    grouping = draw(st.sampled_from([None, *CARD_GROUPINGS]))
    if grouping is None:
        return draw(card_numbers(draw(st.sampled_from(CARD_DIGITS))))
    digits = draw(card_numbers(sum(grouping)))
    starts = [sum(grouping[:i]) for i in range(len(grouping))]
    return draw(st.sampled_from(CARD_SEPARATORS)).join(digits[s : s + n] for s, n in zip(starts, grouping, strict=True))


def edge(text: str, index: int) -> str:
    """The character at `index` of text as the detector reads it (after NFKC), or ''."""
    normal = unicodedata.normalize("NFKC", text)
    return normal[index] if normal else ""


# Text around the number that does not glue itself to it (a digit or letter next to a group would
# make it part of a longer run or another word: not a card number as written).
prefixes = st.text(max_size=30).filter(lambda s: edge(s, -1) not in ALNUM)
suffixes = st.text(max_size=30).filter(lambda s: edge(s, 0) not in ALNUM)


@given(prefix=prefixes, number=written_card_numbers(), suffix=suffixes)
def test_a_card_number_embedded_in_any_text_is_found(prefix, number, suffix):
    assert looks_like_card_number(prefix + number + suffix)


@given(number=written_card_numbers())
def test_a_card_number_in_a_card_token_or_a_key_is_found(number):
    assert looks_like_card_number(f"tok_{number}")
    assert looks_like_card_number(f"order-{number}")


@given(key=st.uuids(version=4).map(str))
def test_a_uuid4_key_is_never_taken_for_a_card_number(key):
    assert not looks_like_card_number(key)
    assert not looks_like_card_number(key.upper())
    assert not looks_like_card_number(f"order-{key}")


def test_a_hundred_thousand_uuid4_keys_pass():
    # the property above samples a few hundred; this is a wider net for the rare digit-only groups
    assert not any(looks_like_card_number(str(uuid.uuid4())) for _ in range(100_000))
