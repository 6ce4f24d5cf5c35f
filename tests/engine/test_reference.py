"""Reference data: disposable, free, typo, role and MX-provider answers per unique value."""

from __future__ import annotations

from importlib import resources

import disposable_email_domains
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from publicsuffixlist import PublicSuffixList

from engine import reference
from engine.reference import classify_domains, provider_of_mx, role_local_part

BIG_LEGITIMATE_PROVIDERS = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
    "gmx.de",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "hotmail.com",
    "aol.com",
    "web.de",
    "163.com",
    "naver.com",
]


def _classified(*domains: str | None) -> dict[str, dict[str, object]]:
    frame = classify_domains(pl.Series("whatever", list(domains), dtype=pl.String))
    return {row["domain"]: row for row in frame.iter_rows(named=True)}


def _suggestion(domain: str) -> str | None:
    return _classified(domain)[domain]["did_you_mean"]


def _is_role(*local_parts: str | None) -> list[bool | None]:
    frame = pl.DataFrame({"local_part": list(local_parts)}, schema={"local_part": pl.String})
    return frame.select(role_local_part(pl.col("local_part"))).to_series().to_list()


def _provider(mx_host: str) -> dict[str, object]:
    return provider_of_mx(pl.Series([mx_host])).row(0, named=True)


# --- classify_domains: shape ---


def test_classify_domains_returns_one_row_per_unique_non_null_domain():
    frame = classify_domains(pl.Series(["gmail.com", None, "acme.io", "gmail.com", None]))
    assert frame["domain"].to_list() == ["gmail.com", "acme.io"]


def test_classify_domains_has_the_contract_columns_and_types():
    frame = classify_domains(pl.Series(["gmail.com"]))
    assert frame.schema == pl.Schema(
        {
            "domain": pl.String,
            "is_disposable": pl.Boolean,
            "is_free_provider": pl.Boolean,
            "did_you_mean": pl.String,
        }
    )


def test_classify_domains_of_an_empty_series_is_an_empty_frame():
    frame = classify_domains(pl.Series([], dtype=pl.String))
    assert frame.is_empty()
    assert frame.columns == ["domain", "is_disposable", "is_free_provider", "did_you_mean"]


# --- Disposable ---


def test_a_listed_disposable_domain_is_disposable():
    assert _classified("mailinator.com")["mailinator.com"]["is_disposable"] is True


@pytest.mark.parametrize("domain", ["x.mailinator.com", "a.b.mailinator.com"])
def test_a_subdomain_of_a_disposable_domain_is_disposable(domain):
    assert _classified(domain)[domain]["is_disposable"] is True


def test_a_domain_that_only_ends_with_a_disposable_name_is_not_disposable():
    domain = "acmemailinator.com"
    assert domain not in reference.disposable_domains()
    assert _classified(domain)[domain]["is_disposable"] is False


def test_a_parent_of_listed_disposable_subdomains_is_not_disposable():
    listed_children = [d for d in reference.disposable_domains() if d.endswith(".dynv6.net")]
    assert listed_children, "precondition: the list holds dynv6.net subdomains"
    assert _classified("dynv6.net")["dynv6.net"]["is_disposable"] is False


@pytest.mark.parametrize("domain", BIG_LEGITIMATE_PROVIDERS)
def test_big_legitimate_providers_are_not_disposable(domain):
    assert _classified(domain)[domain]["is_disposable"] is False


def test_no_disposable_entry_is_a_public_suffix_that_would_flag_a_whole_zone():
    psl = PublicSuffixList()
    assert [d for d in reference.disposable_domains() if psl.is_public(d)] == []


@pytest.fixture
def disposable_allowlist(monkeypatch: pytest.MonkeyPatch):
    """Install an allowlist in the third-party package and rebuild the cached listings."""

    def install(domains: set[str]) -> None:
        monkeypatch.setattr(disposable_email_domains, "allowlist", domains, raising=False)
        _clear_disposable_caches()

    yield install
    monkeypatch.undo()
    _clear_disposable_caches()


def _clear_disposable_caches() -> None:
    reference.disposable_allowlist.cache_clear()
    reference.disposable_domains.cache_clear()
    reference._disposable_listing.cache_clear()


def test_an_allowlisted_domain_is_not_disposable(disposable_allowlist):
    disposable_allowlist({"mailinator.com"})
    assert _classified("mailinator.com")["mailinator.com"]["is_disposable"] is False


def test_an_allowlisted_subdomain_overrides_its_listed_parent(disposable_allowlist):
    disposable_allowlist({"keep.mailinator.com"})
    rows = _classified("keep.mailinator.com", "other.mailinator.com")
    assert rows["keep.mailinator.com"]["is_disposable"] is False
    assert rows["other.mailinator.com"]["is_disposable"] is True


# --- Free providers ---


def test_gmail_is_a_free_provider():
    assert _classified("gmail.com")["gmail.com"]["is_free_provider"] is True


def test_disposable_wins_over_free_provider():
    domain = "10minutemail.co.za"
    assert domain in reference.free_domains() and domain in reference.disposable_domains()
    row = _classified(domain)[domain]
    assert (row["is_disposable"], row["is_free_provider"]) == (True, False)


def test_a_company_domain_is_neither_disposable_nor_free():
    row = _classified("acme-industries.de")["acme-industries.de"]
    assert (row["is_disposable"], row["is_free_provider"], row["did_you_mean"]) == (
        False,
        False,
        None,
    )


def test_a_subdomain_of_a_free_provider_is_not_a_free_provider():
    assert _classified("corp.gmail.com")["corp.gmail.com"]["is_free_provider"] is False


# --- Typo suggestions ---


@pytest.mark.parametrize(
    ("domain", "suggestion"),
    [
        ("gmial.com", "gmail.com"),
        ("hotmial.com", "hotmail.com"),
        ("yaho.com", "yahoo.com"),
        ("gmail.con", "gmail.com"),
        ("outlok.com", "outlook.com"),
        ("gmai.com", "gmail.com"),
        ("gamil.com", "gmail.com"),
        ("gnail.com", "gmail.com"),
        ("gmaill.com", "gmail.com"),
        ("yahooo.com", "yahoo.com"),
        ("iclod.com", "icloud.com"),
        ("outllok.com", "outlook.com"),
        ("hotmaill.co.uk", "hotmail.co.uk"),
        ("yahoo.cmo", "yahoo.com"),
        ("gmail.co", "gmail.com"),
        ("comcast.ne", "comcast.net"),
        ("qq.con", "qq.com"),
        ("gmial.con", "gmail.com"),
        ("yandx.ru", "yandex.ru"),
        ("rockettmaill.com", "rocketmail.com"),
    ],
)
def test_a_near_miss_of_a_popular_mail_domain_gets_a_suggestion(domain, suggestion):
    assert _suggestion(domain) == suggestion


@pytest.mark.parametrize(
    "domain",
    [
        "gmx.de",
        "gmx.at",
        "mail.com",
        "ymail.com",
        "hotmail.co.uk",
        "live.com",
        "gmail.com",
        "email.com",
        "y7mail.com",
        "earthling.net",
        "prontomail.com",
        "bol.com",
        "max.com",
        "gmc.com",
        "mi.com",
        "aig.com",
        "gmailer.io",
        "hotmailer.com",
        "internet.com",
        "company.co",
        "gmial.co",
        "acme-industries.de",
    ],
)
def test_a_real_or_merely_similar_domain_gets_no_suggestion(domain):
    assert _suggestion(domain) is None


def test_a_near_miss_of_two_popular_domains_is_ambiguous_and_gets_no_suggestion():
    assert _suggestion("kmail.com") is None  # one edit from both gmail.com and ymail.com


def test_a_tld_typo_that_is_not_a_real_tld_is_fixed_for_any_domain():
    assert _suggestion("acme.con") == "acme.com"


def test_a_tld_typo_that_is_a_real_tld_is_fixed_only_towards_a_popular_domain():
    assert (_suggestion("hotmail.co"), _suggestion("acme.co")) == ("hotmail.com", None)


def test_a_short_popular_label_is_only_corrected_through_its_tld():
    assert (_suggestion("aoll.com"), _suggestion("aol.con")) == (None, "aol.com")


def test_a_disposable_typo_squat_is_flagged_and_gets_a_suggestion():
    row = _classified("gmial.com")["gmial.com"]
    assert (row["is_disposable"], row["did_you_mean"]) == (True, "gmail.com")


def test_no_popular_mail_domain_gets_a_suggestion():
    frame = classify_domains(pl.Series(reference.popular_mail_domains()))
    assert frame.filter(pl.col("did_you_mean").is_not_null())["domain"].to_list() == []


def test_only_typo_squats_among_listed_free_providers_get_a_suggestion():
    frame = classify_domains(pl.Series(sorted(reference.free_domains())))
    suggested = set(frame.filter(pl.col("did_you_mean").is_not_null())["domain"])
    allowed = reference.typo_squat_domains() | reference.disposable_domains()
    assert suggested <= allowed
    assert len(suggested) <= 0.005 * frame.height


def test_every_listed_typo_squat_domain_gets_a_suggestion():
    frame = classify_domains(pl.Series(sorted(reference.typo_squat_domains())))
    assert frame.filter(pl.col("did_you_mean").is_null())["domain"].to_list() == []


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z0-9]{1,12}\.(com|net|org|co|con|cmo|de|co\.uk|ru)", fullmatch=True))
def test_a_suggestion_is_a_popular_domain_or_the_same_name_with_its_tld_fixed(domain):
    suggestion = _suggestion(domain)
    if suggestion is None:
        return
    fixes = dict(reference.tld_typo_table().select("typo", "intended").iter_rows())
    label, _, tld = domain.rpartition(".")
    assert suggestion != domain
    assert suggestion in reference.popular_mail_domains() or suggestion == f"{label}.{fixes[tld]}"


def test_the_tld_typo_table_knows_which_typos_are_real_tlds():
    psl = PublicSuffixList()
    for typo, is_real_tld in reference.tld_typo_table().select("typo", "is_real_tld").iter_rows():
        assert (psl.publicsuffix(f"x.{typo}", accept_unknown=False) is not None) == is_real_tld


def test_no_popular_mail_domain_is_disposable():
    assert set(reference.popular_mail_domains()) & reference.disposable_domains() == set()


# --- Role local parts ---

RFC_2142_NAMES = [
    "abuse",
    "postmaster",
    "hostmaster",
    "webmaster",
    "noc",
    "security",
    "info",
    "marketing",
    "sales",
    "support",
    "uucp",
    "usenet",
    "news",
    "www",
    "ftp",
]


@pytest.mark.parametrize("name", RFC_2142_NAMES)
def test_every_rfc_2142_mailbox_name_is_a_role(name):
    assert _is_role(name) == [True]


@pytest.mark.parametrize(
    "local_part",
    ["admin", "contact", "help", "billing", "office", "hr", "jobs", "careers", "team", "hello"],
)
def test_common_role_names_are_roles(local_part):
    assert _is_role(local_part) == [True]


@pytest.mark.parametrize("local_part", ["no-reply", "noreply", "No_Reply", "do-not-reply"])
def test_no_reply_is_a_role_whatever_its_separators(local_part):
    assert _is_role(local_part) == [True]


def test_role_matching_ignores_case_and_a_plus_tag():
    assert _is_role("Support+EU", "INFO", "sales+2024") == [True, True, True]


def test_a_compound_of_role_words_is_a_role():
    assert _is_role("sales-team", "info.sales", "it_support") == [True, True, True]


@pytest.mark.parametrize(
    "local_part",
    [
        "john",
        "john.sales",
        "steve.jobs",
        "marie",
        "bill",
        "mark",
        "salesforce",
        "infos",
        "",
        "+info",
    ],
)
def test_a_person_or_an_ordinary_word_is_not_a_role(local_part):
    assert _is_role(local_part) == [False]


def test_a_null_local_part_stays_null():
    assert _is_role(None) == [None]


def test_the_role_list_holds_no_common_given_names():
    given_names = {"bill", "mark", "art", "don", "jack", "will", "grace", "max", "sam", "ray"}
    assert given_names & reference.role_local_parts() == set()


# --- MX providers ---


@pytest.mark.parametrize(
    ("mx_host", "provider"),
    [
        ("aspmx.l.google.com", "google"),
        ("gmail-smtp-in.l.google.com", "google"),
        ("aspmx2.googlemail.com", "google"),
        ("acme-com.mail.protection.outlook.com", "microsoft"),
        ("hotmail-com.olc.protection.outlook.com", "microsoft"),
        ("mta5.am0.yahoodns.net", "yahoo"),
        ("mx01.mail.icloud.com", "apple"),
        ("mail.protonmail.ch", "proton"),
        ("mx.zoho.com", "zoho"),
        ("in1-smtp.messagingengine.com", "fastmail"),
        ("mx00.gmx.net", "gmx"),
        ("mx-ha02.web.de", "web.de"),
        ("mxs.mail.ru", "mail.ru"),
        ("mx.yandex.ru", "yandex"),
        ("eu-smtp-inbound-1.mimecast.com", "mimecast"),
        ("mx0a-00123456.pphosted.com", "proofpoint"),
        ("d123.a.ess.barracudanetworks.com", "barracuda"),
    ],
)
def test_the_provider_is_recognised_from_the_mx_host(mx_host, provider):
    assert _provider(mx_host)["provider"] == provider


def test_mx_hosts_match_case_insensitively_and_without_the_trailing_dot():
    assert _provider("ALT1.ASPMX.L.GOOGLE.COM.")["provider"] == "google"


def test_the_longest_matching_suffix_wins():
    assert _provider("hotmail-com.olc.protection.outlook.com")["mx_suffix"] == (
        "olc.protection.outlook.com"
    )
    assert _provider("mx.eo.outlook.com")["mx_suffix"] == "outlook.com"


@pytest.mark.parametrize("mx_host", ["notgoogle.com", "mx.fakepphosted.com", "gmail.com"])
def test_a_suffix_matches_only_on_a_label_boundary(mx_host):
    assert _provider(mx_host)["provider"] is None


def test_yahoo_is_known_to_accept_every_recipient():
    assert _provider("mta7.am0.yahoodns.net")["accepts_all_at_rcpt"] is True


@pytest.mark.parametrize("mx_host", ["us-smtp-inbound-1.mimecast.com", "mx0b-0011.pphosted.com"])
def test_security_gateways_are_known_to_block_verification(mx_host):
    assert _provider(mx_host)["blocks_verification"] is True


def test_gmail_is_probed_normally():
    row = _provider("gmail-smtp-in.l.google.com")
    assert (row["accepts_all_at_rcpt"], row["blocks_verification"]) == (False, False)


def test_an_unknown_mx_host_has_no_provider_and_is_probed_normally():
    assert _provider("mx.acme-industries.de") == {
        "mx_host": "mx.acme-industries.de",
        "provider": None,
        "mx_suffix": None,
        "accepts_all_at_rcpt": False,
        "blocks_verification": False,
        "dislikes_multi_rcpt": False,
    }


def test_provider_of_mx_returns_one_row_per_unique_host_as_given():
    frame = provider_of_mx(pl.Series(["MX.Google.com.", None, "mx.google.com", "MX.Google.com."]))
    assert frame["mx_host"].to_list() == ["MX.Google.com.", "mx.google.com"]
    assert frame["provider"].to_list() == ["google", "google"]


def test_the_mx_table_has_unique_lower_case_suffixes_and_complete_rows():
    table = reference.mx_provider_table()
    assert table["mx_suffix"].is_unique().all()
    assert (table["mx_suffix"] == table["mx_suffix"].str.to_lowercase()).all()
    assert table.null_count().sum_horizontal().item() == 0


# --- Data files ---


@pytest.mark.parametrize(
    "name",
    [
        "role_local_parts.txt",
        "popular_mail_domains.txt",
        "mx_providers.csv",
        "tld_typos.csv",
        "typo_squat_domains.txt",
    ],
)
def test_every_data_file_names_its_source_and_licence(name):
    text = resources.files("engine.data").joinpath(name).read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Source" in header
    assert "licence" in header.lower() or "license" in header.lower()


def test_loaders_read_each_list_once():
    assert reference.popular_mail_domains() is reference.popular_mail_domains()
    assert reference.role_local_parts() is reference.role_local_parts()
