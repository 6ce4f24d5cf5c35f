"""Syntax: the vectorised rules give email-validator's verdict and reason, under our policy."""

from __future__ import annotations

import string
import time

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.prepare import normalise
from engine.schema import EMAIL_NORMALIZED, EMAIL_RAW, ROW_ID, SYNTAX_REASON, SYNTAX_VALID
from engine.syntax import (
    CELL_IS_EMPTY,
    SYNTAX_POLICY,
    check_syntax,
    fast_syntax_verdicts,
    reference_syntax_check,
)


def _cells(cells: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ROW_ID: pl.Series(range(len(cells)), dtype=pl.UInt64),
            EMAIL_RAW: pl.Series(cells, dtype=pl.String),
        }
    )


def _checked(cells: list[str | None]) -> list[tuple[bool, str | None]]:
    checked = check_syntax(normalise(_cells(cells)))
    return list(zip(checked[SYNTAX_VALID].to_list(), checked[SYNTAX_REASON].to_list(), strict=True))


def _verdict(cell: str | None) -> tuple[bool, str | None]:
    return _checked([cell])[0]


def _fast(cells: list[str | None]) -> pl.DataFrame:
    return fast_syntax_verdicts(normalise(_cells(cells)))


# --- the policy, rule by rule ---


def test_plain_address_is_valid_and_has_no_reason():
    assert _verdict("john.smith@example.com") == (True, None)


def test_plain_address_is_decided_without_the_slow_path():
    fast = _fast(["john.smith@example.com", "john..smith@example.com"])
    assert fast[SYNTAX_VALID].to_list() == [True, False]


def test_every_atext_special_is_allowed_in_the_local_part():
    assert _verdict("!#$%&'*+-/=?^_`.{|}~@example.com") == (True, None)


def test_local_part_of_64_octets_is_valid_and_65_is_too_long():
    assert _verdict("a" * 64 + "@example.com") == (True, None)
    assert _verdict("a" * 65 + "@example.com") == (
        False,
        "The email address is too long before the @-sign (1 character too many).",
    )


def test_label_of_63_octets_is_valid_and_64_is_too_long():
    assert _verdict("me@" + "a" * 63 + ".com") == (True, None)
    assert _verdict("me@" + "a" * 64 + ".com") == (
        False,
        "After the @-sign, periods cannot be separated by so many characters "
        "(1 character too many).",
    )


def test_address_of_254_octets_is_valid_and_255_is_too_long():
    domain = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 54]) + ".com"  # 250 octets
    assert _verdict("abc@" + domain) == (True, None)
    assert _verdict("abcd@" + domain) == (
        False,
        "The email address is too long (1 character too many).",
    )


def test_domain_of_254_octets_is_too_long():
    domain = ".".join(["a" * 63] * 4) + ".com"[: 254 - 4 * 63 - 3 + 1]
    assert len(domain) > 253
    valid, reason = _verdict("me@" + domain)
    assert not valid and reason.startswith("The email address is too long after the @-sign")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (".john@example.com", "An email address cannot start with a period."),
        (
            "john.@example.com",
            "An email address cannot have a period immediately before the @-sign.",
        ),
        ("jo..hn@example.com", "An email address cannot have two periods in a row."),
        (
            "john@.example.com",
            "An email address cannot have a period immediately after the @-sign.",
        ),
        ("john@example..com", "An email address cannot have two periods in a row."),
        (
            "john@-example.com",
            "An email address cannot have a hyphen immediately after the @-sign.",
        ),
        ("john@example.com-", "An email address cannot end with a hyphen."),
        (
            "john@example-.com",
            "An email address cannot have a period and a hyphen next to each other.",
        ),
        ("john@example", "The part after the @-sign is not valid. It should have a period."),
        (
            "john@example.123",
            "The part after the @-sign is not valid. It is not within a valid top-level domain.",
        ),
        (
            "john@ab--cd.com",
            "An email address cannot have two letters followed by two dashes immediately after the "
            "@-sign or after a period, except Punycode.",
        ),
        (
            "john smith@example.com",
            "The email address contains invalid characters before the @-sign: SPACE.",
        ),
        (
            "john(x),y@example.com",
            "The email address contains invalid characters before the @-sign: '(', ')', ','.",
        ),
        ("john@exa_mple.com", "The part after the @-sign contains invalid characters: '_'."),
        ("john@@example.com", "The part after the @-sign contains invalid characters: '@'."),
        ("@example.com", "There must be something before the @-sign."),
        ("john@", "There must be something after the @-sign."),
        ("john.example.com", "An email address must have an @-sign."),
    ],
)
def test_fast_path_rejects_with_email_validators_sentence(address, reason):
    fast = _fast([address])
    assert (fast[SYNTAX_VALID][0], fast[SYNTAX_REASON][0]) == (False, reason)
    assert reference_syntax_check(address) == (False, reason)


@pytest.mark.parametrize("tld", ["test", "local", "localhost", "invalid", "onion", "arpa"])
def test_special_use_domains_are_rejected(tld):
    assert _verdict(f"me@host.{tld}") == (
        False,
        "The part after the @-sign is a special-use or reserved name that cannot be used with "
        "email.",
    )


def test_trailing_dot_after_the_domain_is_invalid():
    assert _verdict("me@example.com.") == (False, "An email address cannot end with a period.")


def test_quoted_local_part_is_rejected_by_policy():
    assert _verdict('"john smith"@example.com') == (
        False,
        "Quoting the part before the @-sign is not allowed here.",
    )


def test_domain_literal_is_rejected_by_policy():
    assert _verdict("me@[192.0.2.1]") == (
        False,
        "A bracketed IP address after the @-sign is not allowed here.",
    )


def test_internationalised_local_part_is_accepted():
    assert _verdict("josé.müller@example.com") == (True, None)


def test_idn_domain_is_accepted_in_either_form():
    assert _checked(["me@bücher.de", "me@xn--bcher-kva.de"]) == [(True, None), (True, None)]


def test_invalid_a_label_is_rejected():
    valid, reason = _verdict("me@xn--0.com")
    assert not valid and reason.startswith("The part after the @-sign is not valid IDNA")


def test_unsafe_unicode_in_the_local_part_is_rejected():
    valid, reason = _verdict("jo\u202ehn@example.com")
    assert (valid, reason) == (
        False,
        "The email address contains unsafe characters: RIGHT-TO-LEFT OVERRIDE.",
    )


def test_fast_path_leaves_unicode_quotes_and_a_labels_to_email_validator():
    fast = _fast(["josé@example.com", "me@bücher.de", '"q"@example.com', "me@[192.0.2.1]"])
    assert fast[SYNTAX_VALID].to_list() == [None, None, None, None]


def test_local_part_error_is_reported_before_the_domain_needs_the_slow_path():
    fast = _fast(["jo..hn@bücher.de"])
    assert fast[SYNTAX_REASON][0] == "An email address cannot have two periods in a row."


def test_empty_cells_are_invalid_with_their_own_reason():
    assert _checked([None, "", "  \u00a0 "]) == [(False, CELL_IS_EMPTY)] * 3


def test_a_huge_cell_is_judged_on_its_length_without_being_parsed():
    huge = "a" * 50_000_000 + "@example.com"
    started = time.perf_counter()
    checked = check_syntax(normalise(_cells([huge, "ok@example.com"])))
    elapsed = time.perf_counter() - started
    assert checked[SYNTAX_VALID].to_list() == [False, True]
    assert checked[SYNTAX_REASON][0] == "The email address is too long (49999758 bytes too many)."
    assert checked[EMAIL_NORMALIZED][0] is None
    assert elapsed < 5, f"a 50 MB cell took {elapsed:.1f} s"


def test_syntax_valid_is_never_null():
    checked = check_syntax(
        normalise(_cells([None, "", "x", "a@b.c", "josé@bücher.de", '"@"@x.com']))
    )
    assert checked[SYNTAX_VALID].null_count() == 0


def test_policy_is_email_validators_defaults_with_strict_length_limits():
    assert dict(SYNTAX_POLICY) == {
        "allow_smtputf8": True,
        "allow_empty_local": False,
        "allow_quoted_local": False,
        "allow_domain_literal": False,
        "allow_display_name": False,
        "strict": True,
        "globally_deliverable": True,
        "test_environment": False,
        "check_deliverability": False,
    }


# --- email-validator's own test corpus ---
#
# Re-expressed from JoshData/python-email-validator, tests/test_syntax.py (commit 03cdade6dacc):
# the syntax cases of test_email_valid, test_email_valid_intl_local_part,
# test_email_valid_only_if_quoted_local_part, test_domain_literal, test_email_invalid_syntax,
# test_email_invalid_reserved_domain, test_email_unsafe_character (on "@example.com" instead of
# "@test", and without the lone surrogate U+D800, which no CSV or Polars string can hold) and the
# pyIsEmail suite in test_pyisemail_tests. The second field names the test or pyIsEmail diagnosis.
# Verdicts are under our policy (email-validator's defaults plus strict=True): quoted local parts
# and domain literals are invalid, as in email-validator's defaults. The one difference is
# VALID_ONCE_TRIMMED: whitespace at the edges of a cell is trimmed by normalise() (CSV cells carry
# it), so an address email-validator rejects for a leading space or trailing CRLF is valid here.

VALID_IN_BOTH = [
    ("Abc@example.tld", "test_email_valid"),
    ("Abc.123@test-example.com", "test_email_valid"),
    ("user+mailbox/department=shipping@example.tld", "test_email_valid"),
    ("!#$%&'*+-/=?^_`.{|}~@example.tld", "test_email_valid"),
    ("jeff@臺網中心.tw", "test_email_valid"),
    ("伊昭傑@郵件.商務", "test_email_valid_intl_local_part"),
    ("राम@मोहन.ईन्फो", "test_email_valid_intl_local_part"),
    ("юзер@екзампл.ком", "test_email_valid_intl_local_part"),
    ("θσερ@εχαμπλε.ψομ", "test_email_valid_intl_local_part"),
    ("葉士豪@臺網中心.tw", "test_email_valid_intl_local_part"),
    ("葉士豪@臺網中心.台灣", "test_email_valid_intl_local_part"),
    ("jeff葉@臺網中心.tw", "test_email_valid_intl_local_part"),
    ("ñoñó@example.tld", "test_email_valid_intl_local_part"),
    ("我買@example.tld", "test_email_valid_intl_local_part"),
    ("甲斐黒川日本@example.tld", "test_email_valid_intl_local_part"),
    ("чебурашкаящик-\u0441-апельсинами.рф@example.tld", "test_email_valid_intl_local_part"),
    ("उदाहरण.परीक्ष@domain.with.idn.tld", "test_email_valid_intl_local_part"),
    ("ιωάννης@εεττ.gr", "test_email_valid_intl_local_part"),
    ("test@iana.org", "ISEMAIL_VALID"),
    ("test@nominet.org.uk", "ISEMAIL_VALID"),
    ("test@about.museum", "ISEMAIL_VALID"),
    ("a@iana.org", "ISEMAIL_VALID"),
    ("test.test@iana.org", "ISEMAIL_VALID"),
    ("!#$%&`*+/=?^`{|}~@iana.org", "ISEMAIL_VALID"),
    ("123@iana.org", "ISEMAIL_VALID"),
    ("test@123.com", "ISEMAIL_VALID"),
    (
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm@iana.org",
        "ISEMAIL_VALID",
    ),
    ("test@mason-dixon.com", "ISEMAIL_VALID"),
    ("test@g--a.com", "ISEMAIL_VALID"),
    ("test@xn--hxajbheg2az3al.xn--jxalpdlp", "ISEMAIL_VALID"),
    ("xn--test@iana.org", "ISEMAIL_VALID"),
]
INVALID_IN_BOTH = [
    (
        '"unnecessarily.quoted.local.part"@example.com',
        "test_email_valid_only_if_quoted_local_part",
    ),
    ('"quoted..local.part"@example.com', "test_email_valid_only_if_quoted_local_part"),
    ('"quoted.with.at@"@example.com', "test_email_valid_only_if_quoted_local_part"),
    ('"quoted with space"@example.com', "test_email_valid_only_if_quoted_local_part"),
    ('"quoted.with.dquote\\""@example.com', "test_email_valid_only_if_quoted_local_part"),
    (
        '"unnecessarily.quoted.with.unicode.λ"@example.com',
        "test_email_valid_only_if_quoted_local_part",
    ),
    ('"quoted.with..unicode.λ"@example.com', "test_email_valid_only_if_quoted_local_part"),
    (
        '"quoted.with.extraneous.\\escape"@example.com',
        "test_email_valid_only_if_quoted_local_part",
    ),
    ("me@[127.0.0.1]", "test_domain_literal"),
    ("me@[IPv6:::1]", "test_domain_literal"),
    ("me@[IPv6:0000:0000:0000:0000:0000:0000:0000:0001]", "test_domain_literal"),
    ("my@localhost", "test_email_invalid_syntax"),
    ("my@.leadingdot.com", "test_email_invalid_syntax"),
    ("my@\uff0eleadingfwdot.com", "test_email_invalid_syntax"),
    ("my@twodots..com", "test_email_invalid_syntax"),
    ("my@twofwdots\uff0e\uff0e.com", "test_email_invalid_syntax"),
    ("my@trailingdot.com.", "test_email_invalid_syntax"),
    ("my@trailingfwdot.com\uff0e", "test_email_invalid_syntax"),
    ("me@-leadingdash", "test_email_invalid_syntax"),
    ("me@\uff0dleadingdashfw", "test_email_invalid_syntax"),
    ("me@trailingdash-", "test_email_invalid_syntax"),
    ("me@trailingdashfw\uff0d", "test_email_invalid_syntax"),
    ("my@baddash.-.com", "test_email_invalid_syntax"),
    ("my@baddash.-a.com", "test_email_invalid_syntax"),
    ("my@baddash.b-.com", "test_email_invalid_syntax"),
    ("my@baddashfw.\uff0d.com", "test_email_invalid_syntax"),
    ("my@baddashfw.\uff0da.com", "test_email_invalid_syntax"),
    ("my@baddashfw.b\uff0d.com", "test_email_invalid_syntax"),
    ("my@example\n.com", "test_email_invalid_syntax"),
    ("me@x!", "test_email_invalid_syntax"),
    ("me@x ", "test_email_invalid_syntax"),
    (".leadingdot@domain.com", "test_email_invalid_syntax"),
    ("twodots..here@domain.com", "test_email_invalid_syntax"),
    ("trailingdot.@domain.email", "test_email_invalid_syntax"),
    ("me@⒈wouldbeinvalid.com", "test_email_invalid_syntax"),
    ("@example.com", "test_email_invalid_syntax"),
    ("white space@test", "test_email_invalid_syntax"),
    ("test@white space", "test_email_invalid_syntax"),
    ("m\ny@example.com", "test_email_invalid_syntax"),
    ("my\n@example.com", "test_email_invalid_syntax"),
    ("test@\n", "test_email_invalid_syntax"),
    ('bad"quotes"@example.com', "test_email_invalid_syntax"),
    ('obsolete."quoted".atom@example.com', "test_email_invalid_syntax"),
    (
        "11111111112222222222333333333344444444445555555555666666666677777@example.com",
        "test_email_invalid_syntax",
    ),
    (
        "111111111122222222223333333333444444444455555555556666666666777777@example.com",
        "test_email_invalid_syntax",
    ),
    (
        "me@1111111111222222222233333333334444444444555555555.66666666667"
        "77777777788888888889999999999000000000.1111111111222222222233333"
        "333334444444444555555555.666666666677777777778888888888999999999"
        "9000000000.111111111122222222223333333333444444444455555555556.c"
        "om",
        "test_email_invalid_syntax",
    ),
    (
        "me@1111111111222222222233333333334444444444555555555.66666666667"
        "77777777788888888889999999999000000000.1111111111222222222233333"
        "333334444444444555555555.666666666677777777778888888888999999999"
        "9000000000.1111111111222222222233333333334444444444555555555566."
        "com",
        "test_email_invalid_syntax",
    ),
    (
        "me@中1111111111222222222233333333334444444444555555555.6666666666"
        "777777777788888888889999999999000000000.111111111122222222223333"
        "3333334444444444555555555.66666666667777777777888888888899999999"
        "99000000000.1111111111222222222233333333334444444444555555555566"
        ".com",
        "test_email_invalid_syntax",
    ),
    (
        "my.long.address@111111111122222222223333333333444444444455555555"
        "5.6666666666777777777788888888889999999999000000000.111111111122"
        "2222222233333333334444444444555555555.66666666667777777777888888"
        "88889999999999000000000.11111111112222222222333333333344444.info",
        "test_email_invalid_syntax",
    ),
    (
        "my.long.address@λ11111111122222222223333333333444444444455555555"
        "5.6666666666777777777788888888889999999999000000000.111111111122"
        "2222222233333333334444444444555555555.66666666667777777777888888"
        "88889999999999000000000.11111111112222222222333333.info",
        "test_email_invalid_syntax",
    ),
    (
        "my.long.address@λ11111111122222222223333333333444444444455555555"
        "5.6666666666777777777788888888889999999999000000000.111111111122"
        "2222222233333333334444444444555555555.66666666667777777777888888"
        "88889999999999000000000.1111111111222222222233333333334444.info",
        "test_email_invalid_syntax",
    ),
    (
        "my.λong.address@111111111122222222223333333333444444444455555555"
        "5.6666666666777777777788888888889999999999000000000.111111111122"
        "2222222233333333334444444444555555555.66666666667777777777888888"
        "88889999999999000000000.111111111122222222223333333333444.info",
        "test_email_invalid_syntax",
    ),
    (
        "my.λong.address@111111111122222222223333333333444444444455555555"
        "5.6666666666777777777788888888889999999999000000000.111111111122"
        "2222222233333333334444444444555555555.66666666667777777777888888"
        "88889999999999000000000.1111111111222222222233333333334444.info",
        "test_email_invalid_syntax",
    ),
    ("me@bad-tld-1", "test_email_invalid_syntax"),
    ("me@bad.tld-2", "test_email_invalid_syntax"),
    ("me@xn--0.tld", "test_email_invalid_syntax"),
    ("me@yy--0.tld", "test_email_invalid_syntax"),
    ("me@yy\uff0d\uff0d0.tld", "test_email_invalid_syntax"),
    ("me@[127.0.0.1]", "test_email_invalid_syntax"),
    ("me@[127.0.0.999]", "test_email_invalid_syntax"),
    ("me@[IPv6:::1]", "test_email_invalid_syntax"),
    ("me@[IPv6:::G]", "test_email_invalid_syntax"),
    ("me@[tag:text]", "test_email_invalid_syntax"),
    ("me@[untaggedtext]", "test_email_invalid_syntax"),
    ("me@[tag:invalid space]", "test_email_invalid_syntax"),
    ("me@anything.arpa", "test_email_invalid_reserved_domain"),
    ("me@valid.invalid", "test_email_invalid_reserved_domain"),
    ("me@link.local", "test_email_invalid_reserved_domain"),
    ("me@host.localhost", "test_email_invalid_reserved_domain"),
    ("me@onion.onion.onion", "test_email_invalid_reserved_domain"),
    ("me@test.test.test", "test_email_invalid_reserved_domain"),
    ("\u2005@example.com", "test_email_unsafe_character"),
    ("\u2028@example.com", "test_email_unsafe_character"),
    ("\u2029@example.com", "test_email_unsafe_character"),
    ("̀@example.com", "test_email_unsafe_character"),
    ("\x9c@example.com", "test_email_unsafe_character"),
    ("\u200b@example.com", "test_email_unsafe_character"),
    ("\u202dforward-\u202ereversed@example.com", "test_email_unsafe_character"),
    ("\ue000@example.com", "test_email_unsafe_character"),
    ("\U0010fdef@example.com", "test_email_unsafe_character"),
    ("\ufdef@example.com", "test_email_unsafe_character"),
    ("test", "ISEMAIL_ERR_NODOMAIN"),
    ("@", "ISEMAIL_ERR_NOLOCALPART"),
    ("test@", "ISEMAIL_ERR_NODOMAIN"),
    ("@io", "ISEMAIL_ERR_NOLOCALPART"),
    ("@iana.org", "ISEMAIL_ERR_NOLOCALPART"),
    (".test@iana.org", "ISEMAIL_ERR_DOT_START"),
    ("test.@iana.org", "ISEMAIL_ERR_DOT_END"),
    ("test..iana.org", "ISEMAIL_ERR_CONSECUTIVEDOTS"),
    ("test_exa-mple.com", "ISEMAIL_ERR_NODOMAIN"),
    ("test\\@test@iana.org", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    (
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklmn@iana.org",
        "ISEMAIL_RFC5322_LOCAL_TOOLONG",
    ),
    (
        "test@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm.com",
        "ISEMAIL_RFC5322_LABEL_TOOLONG",
    ),
    ("test@-iana.org", "ISEMAIL_ERR_DOMAINHYPHENSTART"),
    ("test@iana-.com", "ISEMAIL_ERR_DOMAINHYPHENEND"),
    ("test@.iana.org", "ISEMAIL_ERR_DOT_START"),
    ("test@iana.org.", "ISEMAIL_ERR_DOT_END"),
    ("test@iana..com", "ISEMAIL_ERR_CONSECUTIVEDOTS"),
    (
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm"
        "@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl"
        ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl"
        ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij",
        "ISEMAIL_RFC5322_TOOLONG",
    ),
    (
        "a@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghik"
        "l.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghik"
        "l.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghik"
        "l.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg.hi"
        "j",
        "ISEMAIL_RFC5322_TOOLONG",
    ),
    (
        "a@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghik"
        "l.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghik"
        "l.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghik"
        "l.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg.hi"
        "jk",
        "ISEMAIL_RFC5322_DOMAIN_TOOLONG",
    ),
    ('"test"@iana.org', "ISEMAIL_RFC5321_QUOTEDSTRING"),
    ('"""@iana.org', "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ('"\\a"@iana.org', "ISEMAIL_RFC5321_QUOTEDSTRING"),
    ('"\\""@iana.org', "ISEMAIL_RFC5321_QUOTEDSTRING"),
    ('"\\"@iana.org', "ISEMAIL_ERR_UNCLOSEDQUOTEDSTR"),
    ('"\\\\"@iana.org', "ISEMAIL_RFC5321_QUOTEDSTRING"),
    ('test"@iana.org', "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ('"test@iana.org', "ISEMAIL_ERR_UNCLOSEDQUOTEDSTR"),
    ('"test"test@iana.org', "ISEMAIL_ERR_ATEXT_AFTER_QS"),
    ('test"text"@iana.org', "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ('"test""test"@iana.org', "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ('"test"."test"@iana.org', "ISEMAIL_DEPREC_LOCALPART"),
    ('"test\\ test"@iana.org', "ISEMAIL_RFC5321_QUOTEDSTRING"),
    ('"test".test@iana.org', "ISEMAIL_DEPREC_LOCALPART"),
    ('"test\x00"@iana.org', "ISEMAIL_ERR_EXPECTING_QTEXT"),
    ('"test\\\x00"@iana.org', "ISEMAIL_DEPREC_QP"),
    (
        '"abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz abcdefghj"@iana.org',
        "ISEMAIL_RFC5322_LOCAL_TOOLONG",
    ),
    (
        '"abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz abcdefg\\h"@iana.org',
        "ISEMAIL_RFC5322_LOCAL_TOOLONG",
    ),
    ("test@[255.255.255.255]", "ISEMAIL_RFC5321_ADDRESSLITERAL"),
    ("test@a[255.255.255.255]", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ("test@[255.255.255]", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("test@[255.255.255.255.255]", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("test@[255.255.255.256]", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("test@[1111:2222:3333:4444:5555:6666:7777:8888]", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("test@[IPv6:1111:2222:3333:4444:5555:6666:7777]", "ISEMAIL_RFC5322_IPV6_GRPCOUNT"),
    ("test@[IPv6:1111:2222:3333:4444:5555:6666:7777:8888]", "ISEMAIL_RFC5321_ADDRESSLITERAL"),
    (
        "test@[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999]",
        "ISEMAIL_RFC5322_IPV6_GRPCOUNT",
    ),
    ("test@[IPv6:1111:2222:3333:4444:5555:6666:7777:888G]", "ISEMAIL_RFC5322_IPV6_BADCHAR"),
    ("test@[IPv6:1111:2222:3333:4444:5555:6666::8888]", "ISEMAIL_RFC5321_IPV6DEPRECATED"),
    ("test@[IPv6:1111:2222:3333:4444:5555::8888]", "ISEMAIL_RFC5321_ADDRESSLITERAL"),
    ("test@[IPv6:1111:2222:3333:4444:5555:6666::7777:8888]", "ISEMAIL_RFC5322_IPV6_MAXGRPS"),
    ("test@[IPv6::3333:4444:5555:6666:7777:8888]", "ISEMAIL_RFC5322_IPV6_COLONSTRT"),
    ("test@[IPv6:::3333:4444:5555:6666:7777:8888]", "ISEMAIL_RFC5321_ADDRESSLITERAL"),
    ("test@[IPv6:1111::4444:5555::8888]", "ISEMAIL_RFC5322_IPV6_2X2XCOLON"),
    ("test@[IPv6:::]", "ISEMAIL_RFC5321_ADDRESSLITERAL"),
    ("test@[IPv6:1111:2222:3333:4444:5555:255.255.255.255]", "ISEMAIL_RFC5322_IPV6_GRPCOUNT"),
    (
        "test@[IPv6:1111:2222:3333:4444:5555:6666:255.255.255.255]",
        "ISEMAIL_RFC5321_ADDRESSLITERAL",
    ),
    (
        "test@[IPv6:1111:2222:3333:4444:5555:6666:7777:255.255.255.255]",
        "ISEMAIL_RFC5322_IPV6_GRPCOUNT",
    ),
    ("test@[IPv6:1111:2222:3333:4444::255.255.255.255]", "ISEMAIL_RFC5321_ADDRESSLITERAL"),
    (
        "test@[IPv6:1111:2222:3333:4444:5555:6666::255.255.255.255]",
        "ISEMAIL_RFC5322_IPV6_MAXGRPS",
    ),
    ("test@[IPv6:1111:2222:3333:4444:::255.255.255.255]", "ISEMAIL_RFC5322_IPV6_2X2XCOLON"),
    ("test@[IPv6::255.255.255.255]", "ISEMAIL_RFC5322_IPV6_COLONSTRT"),
    (" test @iana.org", "ISEMAIL_DEPREC_CFWS_NEAR_AT"),
    ("test@ iana .com", "ISEMAIL_DEPREC_CFWS_NEAR_AT"),
    ("test . test@iana.org", "ISEMAIL_DEPREC_FWS"),
    ("(comment)test@iana.org", "ISEMAIL_CFWS_COMMENT"),
    ("((comment)test@iana.org", "ISEMAIL_ERR_UNCLOSEDCOMMENT"),
    ("(comment(comment))test@iana.org", "ISEMAIL_CFWS_COMMENT"),
    ("test@(comment)iana.org", "ISEMAIL_DEPREC_CFWS_NEAR_AT"),
    ("test(comment)test@iana.org", "ISEMAIL_ERR_ATEXT_AFTER_CFWS"),
    ("test@(comment)[255.255.255.255]", "ISEMAIL_DEPREC_CFWS_NEAR_AT"),
    (
        "(comment)abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm@iana.org",
        "ISEMAIL_CFWS_COMMENT",
    ),
    (
        "test@(comment)abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl.com",
        "ISEMAIL_DEPREC_CFWS_NEAR_AT",
    ),
    (
        "(comment)test@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwx"
        "yzabcdefghik.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxy"
        "zabcdefghik.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
        "abcdefghijk.abcdefghijklmnopqrstuvwxyzabcdefghijk.abcdefghijklmn"
        "opqrstu",
        "ISEMAIL_CFWS_COMMENT",
    ),
    ("test@iana.org-", "ISEMAIL_ERR_DOMAINHYPHENEND"),
    ('"test@iana.org', "ISEMAIL_ERR_UNCLOSEDQUOTEDSTR"),
    ("(test@iana.org", "ISEMAIL_ERR_UNCLOSEDCOMMENT"),
    ("test@(iana.org", "ISEMAIL_ERR_UNCLOSEDCOMMENT"),
    ("test@[1.2.3.4", "ISEMAIL_ERR_UNCLOSEDDOMLIT"),
    ('"test\\"@iana.org', "ISEMAIL_ERR_UNCLOSEDQUOTEDSTR"),
    ("(comment\\)test@iana.org", "ISEMAIL_ERR_UNCLOSEDCOMMENT"),
    ("test@iana.org(comment\\)", "ISEMAIL_ERR_UNCLOSEDCOMMENT"),
    ("test@iana.org(comment\\", "ISEMAIL_ERR_BACKSLASHEND"),
    ("test@[RFC-5322-domain-literal]", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("test@[RFC-5322]-domain-literal]", "ISEMAIL_ERR_ATEXT_AFTER_DOMLIT"),
    ("test@[RFC-5322-[domain-literal]", "ISEMAIL_ERR_EXPECTING_DTEXT"),
    ("test@[RFC-5322-\\\x07-domain-literal]", "ISEMAIL_RFC5322_DOMLIT_OBSDTEXT"),
    ("test@[RFC-5322-\\\t-domain-literal]", "ISEMAIL_RFC5322_DOMLIT_OBSDTEXT"),
    ("test@[RFC-5322-\\]-domain-literal]", "ISEMAIL_RFC5322_DOMLIT_OBSDTEXT"),
    ("test@[RFC-5322-domain-literal\\]", "ISEMAIL_ERR_UNCLOSEDDOMLIT"),
    ("test@[RFC-5322-domain-literal\\", "ISEMAIL_ERR_BACKSLASHEND"),
    ("test@[RFC 5322 domain literal]", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("test@[RFC-5322-domain-literal] (comment)", "ISEMAIL_RFC5322_DOMAINLITERAL"),
    ("\x7f@iana.org", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ("test@\x7f.org", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ('"\x7f"@iana.org', "ISEMAIL_DEPREC_QTEXT"),
    ('"\\\x7f"@iana.org', "ISEMAIL_DEPREC_QP"),
    ("(\x7f)test@iana.org", "ISEMAIL_DEPREC_CTEXT"),
    ('"\rtest"@iana.org', "ISEMAIL_ERR_CR_NO_LF"),
    ("(\r)test@iana.org", "ISEMAIL_ERR_CR_NO_LF"),
    ("test@iana.org(\r)", "ISEMAIL_ERR_CR_NO_LF"),
    ('"\n"@iana.org', "ISEMAIL_ERR_EXPECTING_QTEXT"),
    ('"\\\n"@iana.org', "ISEMAIL_DEPREC_QP"),
    ("(\n)test@iana.org", "ISEMAIL_ERR_EXPECTING_CTEXT"),
    ("\x07@iana.org", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ("test@\x07.org", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ('"\x07"@iana.org', "ISEMAIL_DEPREC_QTEXT"),
    ('"\\\x07"@iana.org', "ISEMAIL_DEPREC_QP"),
    ("(\x07)test@iana.org", "ISEMAIL_DEPREC_CTEXT"),
    ("test@[IPv6:1::2:]", "ISEMAIL_RFC5322_IPV6_COLONEND"),
    ('"test\\©"@iana.org', "ISEMAIL_ERR_EXPECTING_QPAIR"),
    ("test@iana/icann.org", "ISEMAIL_RFC5322_DOMAIN"),
    ("test.(comment)test@iana.org", "ISEMAIL_DEPREC_COMMENT"),
]
VALID_ONCE_TRIMMED = [
    ("my@example.com\n", "test_email_invalid_syntax"),
    ("\nmy@example.com", "test_email_invalid_syntax"),
    ("\r\n test@iana.org", "ISEMAIL_CFWS_FWS"),
    ("\r\n \r\n test@iana.org", "ISEMAIL_DEPREC_FWS"),
    ("test@iana.org\n", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ("test@iana.org\r", "ISEMAIL_ERR_CR_NO_LF"),
    ("\rtest@iana.org", "ISEMAIL_ERR_CR_NO_LF"),
    ("\ntest@iana.org", "ISEMAIL_ERR_EXPECTING_ATEXT"),
    ("\r\ntest@iana.org", "ISEMAIL_ERR_FWS_CRLF_END"),
    ("\r\n \r\ntest@iana.org", "ISEMAIL_ERR_FWS_CRLF_END"),
    (" \r\ntest@iana.org", "ISEMAIL_ERR_FWS_CRLF_END"),
    (" \r\n test@iana.org", "ISEMAIL_CFWS_FWS"),
    (" \r\n \r\ntest@iana.org", "ISEMAIL_ERR_FWS_CRLF_END"),
    (" \r\n\r\ntest@iana.org", "ISEMAIL_ERR_FWS_CRLF_X2"),
    (" \r\n\r\n test@iana.org", "ISEMAIL_ERR_FWS_CRLF_X2"),
    ("test@iana.org\r\n ", "ISEMAIL_CFWS_FWS"),
    ("test@iana.org\r\n \r\n ", "ISEMAIL_DEPREC_FWS"),
    ("test@iana.org\r\n", "ISEMAIL_ERR_FWS_CRLF_END"),
    ("test@iana.org\r\n \r\n", "ISEMAIL_ERR_FWS_CRLF_END"),
    ("test@iana.org \r\n", "ISEMAIL_ERR_FWS_CRLF_END"),
    ("test@iana.org \r\n ", "ISEMAIL_CFWS_FWS"),
    ("test@iana.org \r\n \r\n", "ISEMAIL_ERR_FWS_CRLF_END"),
    ("test@iana.org \r\n\r\n", "ISEMAIL_ERR_FWS_CRLF_X2"),
    ("test@iana.org \r\n\r\n ", "ISEMAIL_ERR_FWS_CRLF_X2"),
    (" test@iana.org", "ISEMAIL_CFWS_FWS"),
    ("test@iana.org ", "ISEMAIL_CFWS_FWS"),
]


@pytest.mark.parametrize(("address", "source"), VALID_IN_BOTH)
def test_email_validator_corpus_valid_address_is_valid(address, source):
    assert _verdict(address) == (True, None)


@pytest.mark.parametrize(("address", "source"), INVALID_IN_BOTH)
def test_email_validator_corpus_invalid_address_is_invalid_for_its_reason(address, source):
    checked = check_syntax(normalise(_cells([address])))
    normalised, valid, reason = checked.select(EMAIL_NORMALIZED, SYNTAX_VALID, SYNTAX_REASON).row(0)
    assert not valid
    # The reason is email-validator's on the normalised address (an IDN domain as its A-label).
    assert (valid, reason) == reference_syntax_check(normalised)


@pytest.mark.parametrize(("address", "source"), VALID_ONCE_TRIMMED)
def test_email_validator_corpus_whitespace_around_an_address_is_trimmed(address, source):
    assert reference_syntax_check(address)[0] is False
    assert _verdict(address) == (True, None)


# --- agreement with email-validator on generated near-valid and tricky addresses ---

_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
_TRICKY_ASCII = list(' ()<>[]:;,\\"@.\t\x00\x7f-_')
_TRICKY_UNICODE = [
    "é", "ß", "ñ", "日本", "ж", "λ", "\u0301", "\u00a0", "\u200b", "\u202e", "\uff0e", "\uff20",
    "\ufe6b", "İ", "ﬁ", "⒈", "\u00ad", "Ⅷ", "\U0001f600", "\ue000", "\u0378", "\u037e", "e\u0301",
    "\u3002", "\uff47", "\uff0d", "\u0660", "א",
]  # fmt: skip
_LABELS = [
    "xn--bcher-kva", "xn--0", "xn--p1ai", "xn--", "ab--cd", "a--b", "XN--BCHER-KVA", "123", "_x",
    "bücher", "пример", "例え", "-a", "a-", "", "a" * 63, "b" * 64,
]  # fmt: skip
_TLDS = [
    "com", "org", "c0m", "123", "1a", "a", "test", "local", "localhost", "invalid", "onion", "arpa",
    "xn--p1ai", "рф", "COM", "com.", "c-m", "-com", "com-",
]  # fmt: skip


def _mixed(base: st.SearchStrategy[str], extras: list[str]) -> st.SearchStrategy[str]:
    """`base` with a few tricky pieces spliced in at random places."""

    def splice(text: str, pieces: list[tuple[int, str]]) -> str:
        for position, piece in pieces:
            cut = position % (len(text) + 1)
            text = text[:cut] + piece + text[cut:]
        return text

    return st.builds(
        splice, base, st.lists(st.tuples(st.integers(0, 80), st.sampled_from(extras)), max_size=2)
    )


_atoms = st.text(_ATEXT, min_size=1, max_size=10)
_dot_atoms = st.lists(_atoms, min_size=1, max_size=4).map(".".join)
_local_parts = st.one_of(
    _dot_atoms,
    _dot_atoms.map(lambda a: "." + a),
    _dot_atoms.map(lambda a: a + "."),
    _dot_atoms.map(lambda a: a.replace(".", "..", 1)),
    st.integers(60, 68).map(lambda n: "x" * n),
    _mixed(_dot_atoms, _TRICKY_ASCII),
    _mixed(_dot_atoms, _TRICKY_UNICODE),
    _dot_atoms.map(lambda a: f'"{a}"'),
    st.just(""),
)
_ldh_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_labels = st.one_of(
    _ldh_labels,
    _ldh_labels.map(str.upper),
    st.sampled_from(_LABELS),
    _mixed(_ldh_labels, _TRICKY_UNICODE + _TRICKY_ASCII),
)
_domains = st.one_of(
    st.builds(
        lambda labels, tld: ".".join([*labels, tld]),
        st.lists(_labels, min_size=0, max_size=3),
        st.sampled_from(_TLDS) | _labels,
    ),
    st.sampled_from(["[192.0.2.1]", "[IPv6:::1]", "[1.2.3]", "", "example.com", "bücher.de"]),
)


def _near_the_limits(local_octets: int, total_octets: int, tail: str) -> str:
    """An address of about `total_octets`: a local part, labels of 63 octets, then `tail`."""
    domain = tail
    while len(domain) + 64 <= total_octets - local_octets - 1:
        domain = "d" * 63 + "." + domain
    filler = total_octets - local_octets - 1 - len(domain) - 1
    if filler > 0:
        domain = "e" * min(filler, 63) + "." + domain
    return "l" * local_octets + "@" + domain


_plain_domains = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_ldh_labels, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "io", "c0m", "xn--p1ai", "info", "co.uk"]),
)
_near_valid = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _dot_atoms, _plain_domains),
    st.builds(lambda local, domain: f"{local}@{domain}", _local_parts, _plain_domains),
    st.builds(lambda local, domain: f"{local}@{domain}", _dot_atoms, _domains),
    st.builds(
        _near_the_limits,
        st.integers(1, 66),
        st.integers(250, 258),
        st.sampled_from(["com", "bücher.de", "xn--bcher-kva.de", "c0m", "x.123"]),
    ),
)
_tricky = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _local_parts, _domains),
    st.builds(lambda local, domain: f"{local}@@{domain}", _local_parts, _domains),
    st.builds(lambda a, b, c: f"{a}@{b}@{c}", _local_parts, _local_parts, _domains),
    _mixed(st.builds(lambda local, domain: f"{local}@{domain}", _dot_atoms, _domains), ["@"]),
    _local_parts,
    st.text(max_size=30).filter(lambda t: all(not 0xD800 <= ord(c) <= 0xDFFF for c in t)),
)
# Mostly addresses one mistake away from valid (or valid), then anything odd. (sampled_from,
# not one_of, which would flatten the nested choices and let the many local-part shapes win.)
_addresses = st.sampled_from([_near_valid, _near_valid, _tricky]).flatmap(lambda kind: kind)
_batches = st.lists(_addresses, min_size=1, max_size=20)
_agreement = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_agreement
@given(_batches)
def test_fast_path_never_disagrees_with_email_validator(cells):
    fast = _fast(cells)
    for address, valid, reason in fast.select(EMAIL_NORMALIZED, SYNTAX_VALID, SYNTAX_REASON).rows():
        if address is None or valid is None:
            continue  # an empty cell (our own sentence), or left to email-validator itself
        assert (valid, reason) == reference_syntax_check(address), address


@_agreement
@given(_batches)
def test_check_syntax_gives_email_validators_verdict_and_reason_for_every_address(cells):
    checked = check_syntax(normalise(_cells(cells)))
    for address, valid, reason in checked.select(
        EMAIL_NORMALIZED, SYNTAX_VALID, SYNTAX_REASON
    ).rows():
        if address is None:
            assert (valid, reason) == (False, CELL_IS_EMPTY)
        else:
            assert (valid, reason) == reference_syntax_check(address), address


@_agreement
@given(
    st.lists(
        st.builds(
            lambda local, domain: f"{local}@{domain}",
            _dot_atoms,
            _ldh_labels.map(lambda d: d + ".com"),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_fast_path_decides_every_ascii_dot_atom_address(cells):
    assert _fast(cells)[SYNTAX_VALID].null_count() == 0
