"""Is an address well-formed under our syntax policy (docs/syntax-policy.md)?

The yardstick is email-validator with the settings in `SYNTAX_POLICY`. Calling it per address
costs ~50 µs (~300 µs with an IDN domain), so the bulk of a list is decided by vectorised Polars
rules that reproduce its verdicts and its messages for ASCII addresses:

1. the quick test: one regular expression for a plain dot-atom address whose limits cannot be
   exceeded (local part <= 64, domain <= 63 octets, so no label or total can be too long); ~95 % of
   a real list passes it and is valid;
2. every other row goes through email-validator's checks in email-validator's order, vectorised on
   that small subset: the first failing check gives the reason;
3. the slow path, email-validator itself, for what the rules cannot decide: per unique address for
   odd ones (quotes, angle or square brackets), per unique local part for internationalised local
   parts, per unique domain for IDN domains (A-labels). The parts are checked by email-validator's
   own functions (email_validator.syntax), and the verdict is assembled from them as
   `validate_email` assembles it (local part, then domain, then the length forms): a 120-domain
   IDN sprinkle costs 120 calls, not one per row. tests/engine/test_syntax.py holds the assembly
   to `validate_email` with a property test.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import email_validator
import polars as pl
from email_validator import EmailNotValidError, EmailSyntaxError, validate_email
from email_validator.syntax import (
    safe_character_display,
    validate_email_domain_name,
    validate_email_local_part,
)

from engine.rfc import (
    ACE_PREFIX,
    ADDRESS_MAX_OCTETS,
    ATEXT_SPECIALS,
    CELL_MAX_OCTETS,
    DOMAIN_MAX_OCTETS,
    LABEL_MAX_OCTETS,
    LOCAL_PART_MAX_OCTETS,
)
from engine.schema import EMAIL_NORMALIZED, EMAIL_RAW, LOCAL_PART, SYNTAX_REASON, SYNTAX_VALID

# The policy, as email-validator settings (docs/syntax-policy.md explains each choice). Passed
# explicitly so that a change of email-validator's module-level defaults cannot change our verdicts.
SYNTAX_POLICY: Final[Mapping[str, bool]] = MappingProxyType(
    {
        "allow_smtputf8": True,
        "allow_empty_local": False,
        "allow_quoted_local": False,
        "allow_domain_literal": False,
        "allow_display_name": False,  # normalise() has already unwrapped `Name <addr>`
        "strict": True,  # enforces the 64-octet local part (RFC 5321 §4.5.3.1.1)
        "globally_deliverable": True,
        "test_environment": False,
        "check_deliverability": False,  # DNS is the dns stage's question, not syntax's
    }
)

# Our own sentences, for what email-validator never sees.
CELL_IS_EMPTY: Final = "The cell is empty."

# email-validator 2.x's sentences (email_validator/syntax.py), so that a reason reads the same
# whichever path decided it.
NO_AT_SIGN: Final = "An email address must have an @-sign."
FULL_WIDTH_AT_SIGN: Final = (
    'The email address has the "full-width" at-sign (@) character instead of a regular at-sign.'
)
SMALL_AT_SIGN: Final = (
    'The email address has the "small commercial at" character instead of a regular at-sign.'
)
EMPTY_LOCAL_PART: Final = "There must be something before the @-sign."
LOCAL_PART_TOO_LONG: Final = "The email address is too long before the @-sign {}."
LOCAL_PART_BAD_CHARACTERS: Final = (
    "The email address contains invalid characters before the @-sign: {}."
)
LOCAL_PART_ENDS_WITH_DOT: Final = (
    "An email address cannot have a period immediately before the @-sign."
)
LOCAL_PART_STARTS_WITH_DOT: Final = "An email address cannot start with a period."
TWO_DOTS: Final = "An email address cannot have two periods in a row."
EMPTY_DOMAIN: Final = "There must be something after the @-sign."
DOMAIN_TOO_LONG: Final = "The email address is too long after the @-sign {}."
DOMAIN_BAD_CHARACTERS: Final = "The part after the @-sign contains invalid characters: {}."
DOMAIN_ENDS_WITH_DOT: Final = "An email address cannot end with a period."
DOMAIN_STARTS_WITH_DOT: Final = (
    "An email address cannot have a period immediately after the @-sign."
)
DOMAIN_ENDS_WITH_HYPHEN: Final = "An email address cannot end with a hyphen."
DOMAIN_STARTS_WITH_HYPHEN: Final = (
    "An email address cannot have a hyphen immediately after the @-sign."
)
DOT_NEXT_TO_HYPHEN: Final = "An email address cannot have a period and a hyphen next to each other."
RESERVED_LDH_LABEL: Final = (
    "An email address cannot have two letters followed by two dashes immediately after the "
    "@-sign or after a period, except Punycode."
)
LABEL_TOO_LONG: Final = "After the @-sign, periods cannot be separated by so many characters {}."
DOMAIN_WITHOUT_PERIOD: Final = "The part after the @-sign is not valid. It should have a period."
DOMAIN_TLD_NOT_LETTER: Final = (
    "The part after the @-sign is not valid. It is not within a valid top-level domain."
)
DOMAIN_SPECIAL_USE: Final = (
    "The part after the @-sign is a special-use or reserved name that cannot be used with email."
)
ADDRESS_TOO_LONG: Final = "The email address is too long {}."
ADDRESS_TOO_LONG_NORMALIZED: Final = "The email address is too long after normalization {}."
ADDRESS_TOO_LONG_IDNA: Final = (
    "The email address is too long when the part after the @-sign is converted to IDNA ASCII {}."
)

# Markers inside the reason chain, never in the output: decided valid; needs the slow path.
_VALID: Final = "\x00valid"
_UNDECIDED: Final = "\x00undecided"

_ATEXT_SPECIALS: Final = "".join(f"\\x{ord(c):02x}" for c in ATEXT_SPECIALS)
_ATEXT: Final = "a-zA-Z0-9" + _ATEXT_SPECIALS
# RFC 5322 §3.2.3 dot-atom-text.
_DOT_ATOM: Final = rf"^[{_ATEXT}]+(?:\.[{_ATEXT}]+)*$"


def _quick_valid_pattern(local_letters: str, domain_letters: str) -> str:
    """The quick test's regular expression; the letters allowed on each side are class ranges.

    A dot-atom local part at an LDH hostname (RFC 1123 §2.1) with at least two labels, no "--"
    anywhere (so no A-label and no reserved "ab--" label) and a top-level domain ending in a
    letter (email-validator's rule: every TLD does).
    """
    atext = f"{local_letters}0-9{_ATEXT_SPECIALS}"
    label = f"[{domain_letters}0-9]"
    return (
        rf"^[{atext}]+(?:\.[{atext}]+)*@(?:{label}+(?:-{label}+)*\.)+(?:{label}+-)*{label}*"
        rf"[{domain_letters}]$"
    )


# The quick test on a normalised address: the domain is lower-case by then.
QUICK_VALID: Final = _quick_valid_pattern("a-zA-Z", "a-z")
# An address that is also its own dedup key: no capital anywhere.
QUICK_VALID_LOWER_CASE: Final = _quick_valid_pattern("a-z", "a-z")
# An address that passes the quick test once its domain is lower-cased.
QUICK_VALID_ANY_CASE: Final = _quick_valid_pattern("a-zA-Z", "a-zA-Z")
# In an address this short the domain (so each label) is at most LABEL_MAX_OCTETS and the local
# part at most LOCAL_PART_MAX_OCTETS: the "@" and at least one octet take up the rest.
SHORT_ADDRESS_MAX_OCTETS: Final = LABEL_MAX_OCTETS + 2
# What makes email-validator parse an address other than as local@domain split at the first "@":
# quotes (quoted local parts), "<" (a display name) and square brackets (a domain literal).
_ODD_ADDRESS: Final = r'["<\[\]]'
_NON_ASCII: Final = r"[^\x00-\x7f]"
# RFC 5890 §2.3.1: a label with "--" in the third and fourth positions is reserved unless it is
# an A-label ("xn--"); email-validator checks it on every label.
_RESERVED_LDH: Final = r"(?i)(?:^|\.)(?:[^x.][^.]|x[^n.])--"
_ACE_ANYWHERE: Final = "(?i)" + ACE_PREFIX


def reference_syntax_check(address: str) -> tuple[bool, str | None]:
    """email-validator's verdict on one address under our policy: the yardstick for everything."""
    try:
        validate_email(address, **SYNTAX_POLICY)
    except EmailNotValidError as error:
        return False, str(error)
    return True, None


def _local_part_facts(local: str) -> tuple[str | None, int]:
    """(reason or None, octets after NFC) of an unquoted local part, as `validate_email` does."""
    options: dict[str, Any] = {
        "allow_smtputf8": SYNTAX_POLICY["allow_smtputf8"],
        "allow_empty_local": SYNTAX_POLICY["allow_empty_local"],
        "quoted_local_part": False,
        "strict": SYNTAX_POLICY["strict"],
    }
    try:
        checked = validate_email_local_part(local, **options)
        # RFC 6532 §3.1: the NFC form is the one used, so it must be valid too.
        normalized = unicodedata.normalize("NFC", local)
        if normalized != local:
            try:
                checked = validate_email_local_part(normalized, **options)
            except EmailSyntaxError as error:
                raise EmailSyntaxError(f"After Unicode normalization: {error}") from error
    except EmailSyntaxError as error:
        return str(error), 0
    return None, len(checked["local_part"].encode())


def _domain_facts(domain: str) -> tuple[str | None, int, int]:
    """(reason or None, octets of the Unicode form, octets of the A-label form) of a domain name."""
    try:
        checked = validate_email_domain_name(
            domain,
            test_environment=SYNTAX_POLICY["test_environment"],
            globally_deliverable=SYNTAX_POLICY["globally_deliverable"],
        )
    except EmailSyntaxError as error:
        return str(error), 0, 0
    return None, len(checked["domain"].encode()), len(checked["ascii_domain"])


def _character_display_table() -> dict[str, str]:
    """How email-validator names each ASCII character in a message ("'!'", "SPACE", "U+000A")."""
    return {chr(code): safe_character_display(chr(code)) for code in range(128)}


_CHARACTER_DISPLAY: Final = _character_display_table()


def _bad_character_names(text: pl.Series, allowed_class: str) -> pl.Series:
    """Per row, the sorted, comma-separated names of its ASCII characters outside the class.

    Flattened to one character per row rather than a per-list expression, which Polars would
    evaluate list by list (~25 µs each).
    """
    found = (
        pl.DataFrame({"_row": pl.int_range(text.len(), dtype=pl.UInt32, eager=True), "_c": text})
        .with_columns(pl.col("_c").str.extract_all(f"[^{allowed_class}]"))
        .explode("_c")
        .drop_nulls("_c")
        .unique(["_row", "_c"])
        # Only the ASCII branch of the checks reads these names; other characters get a blank.
        .with_columns(pl.col("_c").replace_strict(_CHARACTER_DISPLAY, default=""))
        .group_by("_row")
        .agg(pl.col("_c").sort().str.join(", "))
    )
    names = pl.repeat("", text.len(), dtype=pl.String, eager=True).scatter(
        found.get_column("_row"), found.get_column("_c")
    )
    return pl.select(pl.when(text.is_not_null()).then(names)).to_series()


def _too_many(excess: pl.Expr, unit: str) -> pl.Expr:
    """email-validator's "(N characters too many)" clause."""
    plural = pl.when(excess > 1).then(pl.lit("s")).otherwise(pl.lit(""))
    return pl.format("({} {}{} too many)", excess, pl.lit(unit), plural)


def _special_use_suffix() -> str:
    # Read at call time: email-validator documents SPECIAL_USE_DOMAIN_NAMES as adjustable.
    names = "|".join(
        "".join(f"\\x{ord(c):02x}" if not c.isalnum() else c for c in name)
        for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
    )
    return rf"(?i)(?:^|\.)(?:{names})$"


def quick_valid(
    address: pl.Expr, local_part_octets: pl.Expr, pattern: str = QUICK_VALID
) -> pl.Expr:
    """True for a plain address that no limit can reject; false means "look closer", not invalid.

    `pattern` is one of the QUICK_VALID patterns: which capitals the address may hold.
    """
    domain_octets = address.str.len_bytes().cast(pl.Int64) - local_part_octets - 1
    return (
        address.str.contains(pattern)
        & (local_part_octets <= LOCAL_PART_MAX_OCTETS)
        & (domain_octets <= LABEL_MAX_OCTETS)
        & ~address.str.contains(_special_use_suffix())
    ).fill_null(False)


def quick_valid_short(address: pl.Expr, pattern: str = QUICK_VALID) -> pl.Expr:
    """quick_valid() without finding the "@": true only for an address of SHORT_ADDRESS_MAX_OCTETS.

    Most addresses are that short, and for them no length limit can bite, so the test is the
    regular expressions alone; a longer address is false here and needs quick_valid().
    """
    return (
        address.str.contains(pattern)
        & (address.str.len_bytes() <= SHORT_ADDRESS_MAX_OCTETS)
        & ~address.str.contains(_special_use_suffix())
    ).fill_null(False)


def _local_part_reason(local: pl.Expr, bad: pl.Expr) -> pl.Expr:
    """email-validator's local-part checks for an ASCII, unquoted local part (None = passes).

    `bad` names the characters outside atext and "." (see _bad_character_names).
    """
    octets = local.str.len_bytes().cast(pl.Int64)
    dot_atom = local.str.contains(_DOT_ATOM)
    return (
        pl.when(octets == 0)
        .then(pl.lit(EMPTY_LOCAL_PART))
        .when(octets > LOCAL_PART_MAX_OCTETS)
        .then(
            pl.format(LOCAL_PART_TOO_LONG, _too_many(octets - LOCAL_PART_MAX_OCTETS, "character"))
        )
        .when(dot_atom)
        .then(pl.lit(None, dtype=pl.String))
        .when(bad != "")
        .then(pl.format(LOCAL_PART_BAD_CHARACTERS, bad))
        .when(local.str.ends_with("."))
        .then(pl.lit(LOCAL_PART_ENDS_WITH_DOT))
        .when(local.str.starts_with("."))
        .then(pl.lit(LOCAL_PART_STARTS_WITH_DOT))
        .otherwise(pl.lit(TWO_DOTS))
    )


def _domain_reason(domain: pl.Expr, bad: pl.Expr) -> pl.Expr:
    """email-validator's domain checks for an ASCII domain without A-labels (None = passes).

    `bad` names the characters outside letters, digits, "." and "-" (see _bad_character_names).
    """
    octets = domain.str.len_bytes().cast(pl.Int64)
    first_long_label = domain.str.extract(rf"(?:^|\.)([^.]{{{LABEL_MAX_OCTETS + 1},}})", 1)
    long_label_excess = first_long_label.str.len_bytes().cast(pl.Int64) - LABEL_MAX_OCTETS
    return (
        pl.when(octets > DOMAIN_MAX_OCTETS)
        .then(pl.format(DOMAIN_TOO_LONG, _too_many(octets - DOMAIN_MAX_OCTETS, "character")))
        .when(bad != "")
        .then(pl.format(DOMAIN_BAD_CHARACTERS, bad))
        .when(domain.str.ends_with("."))
        .then(pl.lit(DOMAIN_ENDS_WITH_DOT))
        .when(domain.str.starts_with("."))
        .then(pl.lit(DOMAIN_STARTS_WITH_DOT))
        .when(domain.str.contains("..", literal=True))
        .then(pl.lit(TWO_DOTS))
        .when(domain.str.ends_with("-"))
        .then(pl.lit(DOMAIN_ENDS_WITH_HYPHEN))
        .when(domain.str.starts_with("-"))
        .then(pl.lit(DOMAIN_STARTS_WITH_HYPHEN))
        .when(domain.str.contains(".-", literal=True) | domain.str.contains("-.", literal=True))
        .then(pl.lit(DOT_NEXT_TO_HYPHEN))
        .when(domain.str.contains(_RESERVED_LDH))
        .then(pl.lit(RESERVED_LDH_LABEL))
        .when(long_label_excess.is_not_null())
        .then(pl.format(LABEL_TOO_LONG, _too_many(long_label_excess, "character")))
        .when(~domain.str.contains(".", literal=True))
        .then(pl.lit(DOMAIN_WITHOUT_PERIOD))
        .when(~domain.str.contains(r"[A-Za-z]$"))
        .then(pl.lit(DOMAIN_TLD_NOT_LETTER))
        .when(domain.str.contains(_special_use_suffix()))
        .then(pl.lit(DOMAIN_SPECIAL_USE))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _widest_character_octets(text: pl.Expr) -> pl.Expr:
    """UTF-8 octets of the widest character in `text` (RFC 3629 §3 ranges)."""
    return (
        pl.when(text.str.contains(r"[\x{10000}-\x{10FFFF}]"))
        .then(4)
        .when(text.str.contains(r"[\x{800}-\x{FFFF}]"))
        .then(3)
        .when(text.str.contains(r"[\x{80}-\x{7FF}]"))
        .then(2)
        .otherwise(1)
    )


def _length_reason(
    address: pl.Expr,
    local_octets: pl.Expr,
    unicode_domain_octets: pl.Expr,
    ascii_domain_octets: pl.Expr,
) -> pl.Expr:
    """email-validator's last check: the address as given, normalised, and with A-labels."""
    octets, characters = address.str.len_bytes(), address.str.len_chars()
    excess = octets.cast(pl.Int64) - ADDRESS_MAX_OCTETS
    # With multi-octet characters email-validator can only bound how many characters are too many.
    fewest = pl.max_horizontal(pl.lit(1), excess // _widest_character_octets(address))
    plural = pl.when(excess > 1).then(pl.lit("s")).otherwise(pl.lit(""))
    as_given = (
        pl.when((characters == octets) | (fewest == excess))
        .then(_too_many(excess, "character"))
        .otherwise(pl.format("({}-{} character{} too many)", fewest, excess, plural))
    )
    normalized_excess = local_octets + 1 + unicode_domain_octets - ADDRESS_MAX_OCTETS
    idna_excess = local_octets + 1 + ascii_domain_octets - ADDRESS_MAX_OCTETS
    return (
        pl.when(excess > 0)
        .then(pl.format(ADDRESS_TOO_LONG, as_given))
        .when(normalized_excess > 0)
        .then(pl.format(ADDRESS_TOO_LONG_NORMALIZED, _too_many(normalized_excess, "byte")))
        .when(idna_excess > 0)
        .then(pl.format(ADDRESS_TOO_LONG_IDNA, _too_many(idna_excess, "byte")))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _slow_facts(parts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """email-validator on the unique odd addresses, local parts and domains of a subset."""
    odd = parts.filter("_odd").get_column("_address").unique().to_list()
    address_facts = pl.DataFrame(
        {
            "_address": odd,
            "_address_verdict": [reference_syntax_check(a)[1] or _VALID for a in odd],
        },
        schema={"_address": pl.String, "_address_verdict": pl.String},
    )
    plain = parts.filter(~pl.col("_odd"))
    locals_ = plain.filter(~pl.col("_local_ascii")).get_column("_local").drop_nulls().unique()
    local_rows = [_local_part_facts(local) for local in locals_.to_list()]
    local_facts = pl.DataFrame(
        {
            "_local": locals_,
            "_local_verdict": [reason or _VALID for reason, _ in local_rows],
            "_local_octets": [octets for _, octets in local_rows],
        },
        schema={"_local": pl.String, "_local_verdict": pl.String, "_local_octets": pl.Int64},
    )
    domains = (
        plain.filter(~pl.col("_domain_plain") & (pl.col("_domain") != ""))
        .get_column("_domain")
        .unique()
    )
    domain_rows = [_domain_facts(domain) for domain in domains.to_list()]
    domain_facts = pl.DataFrame(
        {
            "_domain": domains,
            "_domain_verdict": [reason or _VALID for reason, _, _ in domain_rows],
            "_unicode_domain_octets": [octets for _, octets, _ in domain_rows],
            "_ascii_domain_octets": [octets for _, _, octets in domain_rows],
        },
        schema={
            "_domain": pl.String,
            "_domain_verdict": pl.String,
            "_unicode_domain_octets": pl.Int64,
            "_ascii_domain_octets": pl.Int64,
        },
    )
    return address_facts, local_facts, domain_facts


def _no_slow_facts() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return (
        pl.DataFrame(schema={"_address": pl.String, "_address_verdict": pl.String}),
        pl.DataFrame(
            schema={"_local": pl.String, "_local_verdict": pl.String, "_local_octets": pl.Int64}
        ),
        pl.DataFrame(
            schema={
                "_domain": pl.String,
                "_domain_verdict": pl.String,
                "_unicode_domain_octets": pl.Int64,
                "_ascii_domain_octets": pl.Int64,
            }
        ),
    )


def _passes(verdict: pl.Expr) -> pl.Expr:
    """A slow-path verdict as a chain step: None when it passed, the reason, or undecided."""
    return (
        pl.when(verdict.is_null())
        .then(pl.lit(_UNDECIDED))
        .when(verdict == _VALID)
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(verdict)
    )


def _verdicts(rows: pl.DataFrame, *, slow_path: bool) -> pl.Series:
    """The first failing check of each row, in email-validator's order, or _VALID / _UNDECIDED."""
    address = pl.col(EMAIL_NORMALIZED)
    parts = (
        rows.select(
            _address=address,
            _raw_octets=pl.col(EMAIL_RAW).str.len_bytes().cast(pl.Int64),
            _halves=address.str.splitn("@", 2),
            _odd=address.str.contains(_ODD_ADDRESS).fill_null(False),
        )
        .unnest("_halves")
        .rename({"field_0": "_local", "field_1": "_domain"})
        .with_columns(
            _local=pl.when(pl.col("_domain").is_not_null()).then("_local"),
        )
        .with_columns(
            _local_ascii=~pl.col("_local").str.contains(_NON_ASCII),
            _domain_plain=~pl.col("_domain").str.contains(_NON_ASCII)
            & ~pl.col("_domain").str.contains(_ACE_ANYWHERE),
        )
    )
    parts = parts.with_columns(
        _local_bad=_bad_character_names(parts.get_column("_local"), _ATEXT + r"\."),
        _domain_bad=_bad_character_names(parts.get_column("_domain"), r"a-zA-Z0-9\.\-"),
    )
    address_facts, local_facts, domain_facts = _slow_facts(parts) if slow_path else _no_slow_facts()
    parts = (
        parts.join(address_facts, on="_address", how="left", maintain_order="left")
        .join(local_facts, on="_local", how="left", maintain_order="left")
        .join(domain_facts, on="_domain", how="left", maintain_order="left")
    )
    local, domain = pl.col("_local"), pl.col("_domain")
    local_ascii, domain_plain = pl.col("_local_ascii"), pl.col("_domain_plain")
    empty_or_oversize = (
        pl.when(pl.col("_raw_octets") > CELL_MAX_OCTETS)
        .then(
            pl.format(
                ADDRESS_TOO_LONG, _too_many(pl.col("_raw_octets") - ADDRESS_MAX_OCTETS, "byte")
            )
        )
        .otherwise(pl.lit(CELL_IS_EMPTY))
    )
    no_at_sign = (
        pl.when(pl.col("_address").str.contains("\uff20", literal=True))
        .then(pl.lit(FULL_WIDTH_AT_SIGN))
        .when(pl.col("_address").str.contains("\ufe6b", literal=True))
        .then(pl.lit(SMALL_AT_SIGN))
        .otherwise(pl.lit(NO_AT_SIGN))
    )
    local_step = (
        pl.when(local_ascii)
        .then(_local_part_reason(local, pl.col("_local_bad")))
        .otherwise(_passes(pl.col("_local_verdict")))
    )
    domain_step = (
        pl.when(domain == "")
        .then(pl.lit(EMPTY_DOMAIN))
        .when(domain_plain)
        .then(_domain_reason(domain, pl.col("_domain_bad")))
        .otherwise(_passes(pl.col("_domain_verdict")))
    )
    domain_octets = domain.str.len_bytes().cast(pl.Int64)
    length_step = _length_reason(
        pl.col("_address"),
        pl.when(local_ascii).then(local.str.len_bytes().cast(pl.Int64)).otherwise("_local_octets"),
        pl.when(domain_plain).then(domain_octets).otherwise("_unicode_domain_octets"),
        pl.when(domain_plain).then(domain_octets).otherwise("_ascii_domain_octets"),
    )
    return parts.select(
        pl.coalesce(
            pl.when(pl.col("_address").is_null() | (pl.col("_address") == "")).then(
                empty_or_oversize
            ),
            pl.when("_odd").then(_passes(pl.col("_address_verdict"))),
            pl.when(pl.col("_local").is_null()).then(no_at_sign),
            local_step,
            domain_step,
            length_step,
            pl.lit(_VALID),
        )
    ).to_series()


def syntax_verdicts(
    frame: pl.DataFrame, *, quick_valid_rows: pl.Series | None, slow_path: bool
) -> pl.DataFrame:
    """Add SYNTAX_VALID and SYNTAX_REASON; check_syntax() and fast_syntax_verdicts() in one.

    `quick_valid_rows`: the quick test's answer if the caller already has it (prepare() runs it
    on the raw cells, where a quick-valid cell is also already normal). Without the slow path,
    SYNTAX_VALID is null where email-validator would have to decide.
    """
    if quick_valid_rows is None:
        quick_valid_rows = frame.select(
            quick_valid(pl.col(EMAIL_NORMALIZED), pl.col(LOCAL_PART).str.len_bytes())
        ).to_series()
    valid = quick_valid_rows.cast(pl.Boolean)
    reason = pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    rest = (~quick_valid_rows).arg_true()
    if not rest.is_empty():
        verdict = _verdicts(frame.select(EMAIL_NORMALIZED, EMAIL_RAW)[rest], slow_path=slow_path)
        decided = pl.select(
            valid=pl.when(verdict == _VALID)
            .then(True)
            .when(verdict == _UNDECIDED)
            .then(None)
            .otherwise(False),
            reason=pl.when(verdict.is_in([_VALID, _UNDECIDED])).then(None).otherwise(verdict),
        )
        valid = valid.scatter(rest, decided.get_column("valid"))
        reason = reason.scatter(rest, decided.get_column("reason"))
    return frame.with_columns(valid.alias(SYNTAX_VALID), reason.alias(SYNTAX_REASON))


def fast_syntax_verdicts(frame: pl.DataFrame) -> pl.DataFrame:
    """check_syntax without the slow path: SYNTAX_VALID is null where email-validator is needed.

    Exposed so a test can hold the vectorised rules against email-validator on the same input.
    """
    return syntax_verdicts(frame, quick_valid_rows=None, slow_path=False)


def check_syntax(frame: pl.DataFrame) -> pl.DataFrame:
    """Add SYNTAX_VALID (never null) and SYNTAX_REASON (a sentence; null when valid).

    Expects normalise()'s columns (EMAIL_NORMALIZED, LOCAL_PART) beside EMAIL_RAW.
    """
    return syntax_verdicts(frame, quick_valid_rows=None, slow_path=True)
