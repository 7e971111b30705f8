"""Email normalization and the password policy (registration answers 422 when they refuse)."""

import pytest

from roombook.domain.accounts import (
    USER_ID_BLOCK,
    Region,
    check_password_policy,
    first_user_id,
    normalize_email,
    region_of_user_id,
)
from roombook.domain.errors import InvalidEmail, RoombookError, WeakPassword


def test_an_email_is_stored_trimmed_and_lower_case():
    assert normalize_email("  Ada.Lovelace+Rooms@Example.ORG ") == "ada.lovelace+rooms@example.org"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ada",
        "ada@",
        "@example.org",
        "ada@example",
        "ada@@example.org",
        "a da@example.org",
        "ada@-example.org",
        "ada@example.c",
        "ada@exa_mple.org",
        "x" * 65 + "@example.org",
        "ada@" + "a" * 250 + ".org",
    ],
)
def test_a_malformed_email_is_refused(email):
    with pytest.raises(InvalidEmail):
        normalize_email(email)


def test_email_and_password_errors_are_validation_errors_of_roombook():
    assert issubclass(InvalidEmail, RoombookError) and issubclass(InvalidEmail, ValueError)
    assert issubclass(WeakPassword, RoombookError) and issubclass(WeakPassword, ValueError)


def test_a_password_needs_at_least_ten_characters():
    with pytest.raises(WeakPassword):
        check_password_policy("123456789")
    check_password_policy("1234567890")


def test_a_password_has_at_most_1024_characters():
    check_password_policy("p" * 1024)
    with pytest.raises(WeakPassword):
        check_password_policy("p" * 1025)


def test_length_counts_characters_not_bytes():
    check_password_policy("éééééééééé")


def test_each_region_numbers_its_users_from_its_own_block():
    assert first_user_id(Region.EU) == 1
    assert first_user_id(Region.US) == USER_ID_BLOCK + 1
    assert region_of_user_id(1) is Region.EU
    assert region_of_user_id(USER_ID_BLOCK) is Region.EU
    assert region_of_user_id(USER_ID_BLOCK + 1) is Region.US
    with pytest.raises(ValueError):
        region_of_user_id(0)
    with pytest.raises(ValueError):
        region_of_user_id(len(Region) * USER_ID_BLOCK + 1)
