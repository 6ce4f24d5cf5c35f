"""A deterministic, realistic email list for benchmarking the prepare stage (issue 2's mix).

A real CRM export cannot be checked in, so this one imitates what real exports look like: a few
giant mailbox providers and a long tail of ~40,000 company domains, name-shaped local parts, 5 %
duplicates (some differing only in case), 2 % syntax errors of the kinds people actually type, and
a sprinkle of the rare rows that force the slow path (IDN domains, internationalised local parts,
quoted local parts, display names, `mailto:` links, padded and empty cells).

Everything is vectorised in Polars (10 M rows in ~25 s, 1 M in ~3 s on 2 cores). Randomness is
SplitMix64 computed with Polars integer arithmetic over a row counter (no hashing, nothing that
depends on threads), so a (seed, n_rows) pair gives the same file on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

# SplitMix64 constants: Steele, Lea & Flood, "Fast Splittable Pseudorandom Number Generators"
# (OOPSLA 2014), the finaliser Java's SplittableRandom uses.
SPLITMIX64_GAMMA: Final = 0x9E3779B97F4A7C15
SPLITMIX64_MUL1: Final = 0xBF58476D1CE4E5B9
SPLITMIX64_MUL2: Final = 0x94D049BB133111EB
UINT64_MASK: Final = (1 << 64) - 1
FLOAT53_SCALE: Final = 2.0**-53  # 53 random bits -> a float in [0, 1), as numpy and Java do

DOMAIN_COUNT: Final = 40_000
RANDOM_STREAMS: Final = (
    "first", "last", "last_middle", "last_suffix", "domain", "shape", "two_digits", "year",
    "syllable1", "syllable2", "four_digits", "tag", "role", "recased_local", "upper_domain",
    "unicode_local", "unicode_name", "quoted_local", "syntax_error", "error_kind", "display_name",
    "mailto", "trailing_space", "leading_space", "nbsp", "empty", "duplicate",
    "duplicate_recased", "earlier",
)  # fmt: skip

# Mailbox providers and their share of rows: roughly the shape of a consumer list in Europe and
# North America (Gmail dominant, then Microsoft and Yahoo, then regional providers).
GIANT_PROVIDERS: Final[tuple[tuple[str, float], ...]] = (
    ("gmail.com", 0.26),
    ("yahoo.com", 0.06),
    ("hotmail.com", 0.05),
    ("outlook.com", 0.04),
    ("icloud.com", 0.02),
    ("aol.com", 0.015),
    ("gmx.de", 0.01),
    ("web.de", 0.008),
    ("yahoo.co.uk", 0.008),
    ("hotmail.co.uk", 0.006),
    ("live.com", 0.006),
    ("mail.ru", 0.006),
    ("qq.com", 0.006),
    ("t-online.de", 0.005),
    ("comcast.net", 0.005),
    ("yandex.ru", 0.005),
    ("msn.com", 0.004),
    ("orange.fr", 0.004),
    ("163.com", 0.004),
    ("free.fr", 0.003),
    ("libero.it", 0.003),
    ("btinternet.com", 0.003),
    ("proton.me", 0.003),
    ("googlemail.com", 0.002),
)
IDN_DOMAIN_COUNT: Final = 120
IDN_ROW_SHARE: Final = 0.002
# The long tail follows Zipf's law with this exponent (company domains in B2B lists).
TAIL_ZIPF_EXPONENT: Final = 0.9

IDN_STEMS: Final = (
    "müller",
    "straße",
    "zürich",
    "københavn",
    "łódź",
    "español",
    "bäckerei",
    "café",
    "gärtnerei",
    "übersetzung",
    "пример",
    "почта",
    "магазин",
    "δοκιμή",
    "εταιρεία",
    "例え",
    "中文",
    "会社",
    "ドメイン",
)
IDN_TLDS: Final = ("de", "ch", "dk", "pl", "es", "fr", "com", "рф", "gr", "jp", "中国")
TAIL_TLDS: Final[tuple[tuple[str, float], ...]] = (
    ("com", 0.46),
    ("net", 0.06),
    ("org", 0.06),
    ("de", 0.07),
    ("co.uk", 0.05),
    ("fr", 0.03),
    ("io", 0.03),
    ("nl", 0.03),
    ("com.au", 0.02),
    ("ca", 0.02),
    ("it", 0.02),
    ("es", 0.02),
    ("ch", 0.02),
    ("se", 0.015),
    ("pl", 0.015),
    ("com.br", 0.015),
    ("co.jp", 0.01),
    ("info", 0.01),
    ("biz", 0.005),
    ("us", 0.005),
    ("technology", 0.005),
)
SYLLABLES: Final = (
    "ka",
    "lo",
    "mi",
    "ter",
    "san",
    "vel",
    "dor",
    "ex",
    "pro",
    "net",
    "tech",
    "data",
    "cor",
    "ra",
    "ven",
    "ta",
    "li",
    "sys",
    "gro",
    "up",
    "bau",
    "haus",
    "co",
    "mar",
    "tin",
    "ber",
    "gen",
    "ix",
    "on",
    "al",
    "nor",
    "sol",
    "vi",
    "zen",
    "qua",
    "lux",
    "fin",
    "med",
    "bio",
    "agri",
    "log",
    "tra",
    "nova",
)
FIRST_NAMES: Final = (
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "chris",
    "nancy",
    "daniel",
    "lisa",
    "matthew",
    "betty",
    "anthony",
    "sandra",
    "mark",
    "ashley",
    "paul",
    "emily",
    "steven",
    "donna",
    "andrew",
    "michelle",
    "josh",
    "carol",
    "kevin",
    "amanda",
    "brian",
    "melissa",
    "george",
    "deborah",
    "tim",
    "stephanie",
    "ryan",
    "laura",
    "jacob",
    "emma",
    "lukas",
    "sophie",
    "jan",
    "anna",
    "felix",
    "lea",
    "paul",
    "marie",
    "leon",
    "hannah",
    "noah",
    "mia",
    "elias",
    "lena",
    "pierre",
    "camille",
    "luca",
    "giulia",
    "pablo",
    "lucia",
    "sven",
    "ingrid",
    "piotr",
    "agnieszka",
)
SURNAME_STEMS: Final = (
    "smith",
    "johnson",
    "william",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martin",
    "hernandez",
    "lopez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "lee",
    "thompson",
    "white",
    "harris",
    "clark",
    "lewis",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "green",
    "baker",
    "adams",
    "nelson",
    "hill",
    "campbell",
    "mitchell",
    "roberts",
    "muller",
    "schmidt",
    "schneider",
    "fischer",
    "weber",
    "meyer",
    "wagner",
    "becker",
    "schulz",
    "hoffmann",
    "dubois",
    "moreau",
    "laurent",
    "rossi",
    "russo",
    "ferrari",
    "esposito",
    "kowal",
    "nowak",
    "novak",
    "jansen",
    "devries",
    "peters",
    "berg",
    "lind",
)
SURNAME_SUFFIXES: Final = ("", "", "", "son", "ski", "er", "mann", "ez", "ini", "sen", "ova")
UNICODE_LOCAL_PARTS: Final = (
    "josé",
    "müller",
    "françois",
    "søren",
    "zoë",
    "chloé",
    "ömer",
    "renée",
    "jürgen",
    "ana.maría",
    "иван",
    "δημήτρης",
    "李雷",
    "ゆうき",
    "łukasz",
)
ROLE_LOCAL_PARTS: Final = (
    "info",
    "sales",
    "contact",
    "admin",
    "support",
    "office",
    "hello",
    "billing",
)
PLUS_TAGS: Final = (
    "news",
    "shop",
    "promo",
    "2024",
    "work",
)

# Local-part shapes and their shares of rows (from what consumer and B2B exports look like).
LOCAL_PART_SHAPES: Final[tuple[float, ...]] = (
    0.30,  # first.last
    0.12,  # flast
    0.12,  # firstlast42
    0.05,  # first_last
    0.10,  # firstsmith1987
    0.10,  # first.last42
    0.04,  # last.first
    0.12,  # syllable handle with digits
    0.02,  # first.last+tag (sub-addressing)
    0.03,  # role address
)

# Shares of rows for each kind of imperfection.
DUPLICATE_SHARE: Final = 0.048  # plus accidental name collisions (~0.2 % at 1 M rows)
DUPLICATE_RECASED_SHARE: Final = 0.3  # duplicates typed again with different capitals
SYNTAX_ERROR_SHARE: Final = 0.02
SYNTAX_ERROR_KINDS: Final = 18  # see _syntax_errors
RECASED_LOCAL_SHARE: Final = 0.03
UPPER_DOMAIN_SHARE: Final = 0.01
UNICODE_LOCAL_SHARE: Final = 0.0008
QUOTED_LOCAL_SHARE: Final = 0.0001
DISPLAY_NAME_SHARE: Final = 0.00003
MAILTO_SHARE: Final = 0.00002
TRAILING_SPACE_SHARE: Final = 0.008
LEADING_SPACE_SHARE: Final = 0.003
NBSP_SHARE: Final = 0.0005
EMPTY_CELL_SHARE: Final = 0.002


def _splitmix64_python(value: int) -> int:
    z = (value + SPLITMIX64_GAMMA) & UINT64_MASK
    z = ((z ^ (z >> 30)) * SPLITMIX64_MUL1) & UINT64_MASK
    z = ((z ^ (z >> 27)) * SPLITMIX64_MUL2) & UINT64_MASK
    return z ^ (z >> 31)


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _splitmix64_step(column: str) -> list[pl.Expr]:
    """SplitMix64's increment and three mixing rounds as separate steps, each computed once."""
    z = pl.col(column)
    return [
        z + _u64(SPLITMIX64_GAMMA),
        z.xor(z // _u64(1 << 30)) * _u64(SPLITMIX64_MUL1),
        z.xor(z // _u64(1 << 27)) * _u64(SPLITMIX64_MUL2),
        z.xor(z // _u64(1 << 31)),
    ]


def _uniform_draws(n_rows: int, seed: int) -> pl.DataFrame:
    """One column of floats in [0, 1) per random stream, independent per (seed, stream)."""
    counter = pl.int_range(n_rows, dtype=pl.UInt64, eager=True)
    starts = {
        stream: _splitmix64_python(_splitmix64_python(seed) ^ _splitmix64_python(index))
        for index, stream in enumerate(RANDOM_STREAMS)
    }
    draws = pl.DataFrame({stream: counter + start for stream, start in starts.items()})
    for step in range(4):
        draws = draws.with_columns(
            _splitmix64_step(stream)[step].alias(stream) for stream in RANDOM_STREAMS
        )
    return draws.select(
        ((pl.col(stream) // _u64(1 << 11)).cast(pl.Float64) * FLOAT53_SCALE).alias(f"u_{stream}")
        for stream in RANDOM_STREAMS
    )


def _uniform(stream: str) -> pl.Expr:
    return pl.col(f"u_{stream}")


def _choice(uniform: pl.Expr, weights: Sequence[float]) -> pl.Expr:
    """Index of the bucket each uniform draw falls in, buckets sized by `weights`."""
    total = sum(weights)
    cumulative, running = [], 0.0
    for weight in weights:
        running += weight / total
        cumulative.append(running)
    cumulative[-1] = 1.0
    buckets = pl.lit(pl.Series(cumulative, dtype=pl.Float64))
    return buckets.search_sorted(uniform, side="right").clip(0, len(weights) - 1)


def _pick(values: Sequence[str], uniform: pl.Expr) -> pl.Expr:
    index = (uniform * len(values)).cast(pl.UInt32).clip(0, len(values) - 1)
    return pl.lit(pl.Series(values, dtype=pl.String)).gather(index)


def _domain_table(seed: int) -> tuple[list[str], list[float]]:
    """40,000 distinct domains and each one's share of rows."""
    rng = random.Random(seed)
    names = [name for name, _ in GIANT_PROVIDERS]
    shares = [share for _, share in GIANT_PROVIDERS]
    seen = set(names)
    idn: list[str] = []
    while len(idn) < IDN_DOMAIN_COUNT:
        stem = rng.choice(IDN_STEMS)
        name = f"{stem}{rng.choice(['', '-', ''])}{rng.choice(SYLLABLES)}.{rng.choice(IDN_TLDS)}"
        if name not in seen:
            seen.add(name)
            idn.append(name)
    names += idn
    shares += [IDN_ROW_SHARE / IDN_DOMAIN_COUNT] * IDN_DOMAIN_COUNT
    tail_share = 1.0 - sum(shares)
    tld_names = [tld for tld, _ in TAIL_TLDS]
    tld_weights = [weight for _, weight in TAIL_TLDS]
    tail: list[str] = []
    while len(tail) < DOMAIN_COUNT - len(names):
        stem = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.15:
            stem += "-" + rng.choice(SYLLABLES)
        if rng.random() < 0.05:
            stem += str(rng.randint(1, 99))
        name = f"{stem}.{rng.choices(tld_names, tld_weights)[0]}"
        if rng.random() < 0.08:
            name = f"{rng.choice(['mail', 'eu', 'corp', 'us', 'mx'])}.{name}"
        if name not in seen:
            seen.add(name)
            tail.append(name)
    zipf = [1.0 / (rank + 10) ** TAIL_ZIPF_EXPONENT for rank in range(len(tail))]
    zipf_total = sum(zipf)
    return names + tail, shares + [tail_share * w / zipf_total for w in zipf]


def _surname_stems() -> list[str]:
    """Real surnames plus ~1,900 syllable pairs: the first piece of a generated last name."""
    return list(SURNAME_STEMS) + [a + b for a in SYLLABLES for b in SYLLABLES if a != b]


def _last_name() -> pl.Expr:
    """A surname from ~850,000 (stem, optional syllable, suffix) combinations.

    A large space keeps accidental collisions (two John Smiths at gmail.com) near 1 % even at
    10 M rows, so the duplicate share is the one chosen, not an artefact of too few names.
    """
    return pl.concat_str(
        _pick(_surname_stems(), _uniform("last")),
        _pick(("", *SYLLABLES), _uniform("last_middle")),
        _pick(SURNAME_SUFFIXES, _uniform("last_suffix")),
    )


def _rewrite(
    frame: pl.DataFrame, column: str, cases: Sequence[tuple[pl.Expr, pl.Expr]]
) -> pl.DataFrame:
    """Replace `column` by each case's value on the rows its condition picks (first case wins).

    Each case is evaluated on its own rows only: rare rewrites then cost nothing on the rest, where
    a `when/then` chain would evaluate every branch on every row.
    """
    values = frame.get_column(column)
    taken = pl.repeat(False, frame.height, eager=True)
    for condition, value in cases:
        rows = (frame.select(condition).to_series() & ~taken).arg_true()
        if rows.len():
            inputs = frame.select({"row", *value.meta.root_names()}).gather(rows)
            values = values.scatter(rows, inputs.select(value).to_series())
            taken = taken.scatter(rows, True)
    return frame.with_columns(values.alias(column))


def _local_part_shapes() -> list[pl.Expr]:
    """Name-shaped local parts, one expression per entry of LOCAL_PART_SHAPES."""
    first, last = pl.col("first_name"), pl.col("last_name")
    two_digits = (_uniform("two_digits") * 100).cast(pl.Int32).cast(pl.String)
    year = (1950 + _uniform("year") * 60).cast(pl.Int32).cast(pl.String)
    handle = pl.concat_str(
        _pick(SYLLABLES, _uniform("syllable1")),
        _pick(SYLLABLES, _uniform("syllable2")),
        (_uniform("four_digits") * 10_000).cast(pl.Int32).cast(pl.String),
    )
    return [
        pl.concat_str(first, pl.lit("."), last),
        pl.concat_str(first.str.head(1), last),
        pl.concat_str(first, last, two_digits),
        pl.concat_str(first, pl.lit("_"), last),
        pl.concat_str(first, last, year),
        pl.concat_str(first, pl.lit("."), last, two_digits),
        pl.concat_str(last, pl.lit("."), first),
        handle,
        pl.concat_str(first, pl.lit("."), last, pl.lit("+"), _pick(PLUS_TAGS, _uniform("tag"))),
        # Role mailboxes belong to company domains, not to a giant provider's users.
        pl.when(pl.col("domain_rank") < len(GIANT_PROVIDERS))
        .then(pl.concat_str(first, pl.lit("."), last))
        .otherwise(_pick(ROLE_LOCAL_PARTS, _uniform("role"))),
    ]


def _syntax_errors() -> list[pl.Expr]:
    """The mistakes people type, one expression per kind (SYNTAX_ERROR_KINDS of them)."""
    email, local, domain = pl.col("email"), pl.col("local"), pl.col("domain")
    first_label = domain.str.extract(r"^([^.]+)", 1)
    return [
        pl.concat_str(local, domain),  # forgot the @
        pl.concat_str(local, pl.lit(" at "), domain),
        pl.concat_str(local.str.replace(".", "..", literal=True), pl.lit("..x@"), domain),
        pl.concat_str(local, pl.lit(".@"), domain),
        pl.concat_str(pl.lit("."), local, pl.lit("@"), domain),
        pl.concat_str(local, pl.lit(" jr@"), domain),
        pl.concat_str(local, pl.lit("@"), domain.str.replace(r"\.([^.]+)$", ",$1")),
        pl.concat_str(local, pl.lit("@"), first_label),  # no top-level domain
        pl.concat_str(email, pl.lit(".")),
        pl.concat_str(local, pl.lit("@@"), domain),
        pl.concat_str(pl.lit("@"), domain),
        pl.concat_str(local, pl.lit("@")),
        pl.concat_str(local, pl.lit("@"), first_label, pl.lit("_mail.com")),
        pl.concat_str(local, pl.lit("@-"), domain),
        pl.concat_str(local, local, local, local, local, local, pl.lit("@"), domain),  # > 64
        pl.concat_str(local, pl.lit("@192.168.0."), pl.col("row").cast(pl.String)),  # numeric TLD
        pl.concat_str(local, pl.lit(";"), local, pl.lit("@"), domain),
        pl.concat_str(local, pl.lit("@"), domain.str.replace(".", "..", literal=True)),
    ]


def generate_list(n_rows: int, seed: int, path: Path) -> Path:
    """Write an n_rows list (header `email,first_name,last_name`) to `path`, same bytes per seed."""
    names, shares = _domain_table(seed)

    def share(stream: str, fraction: float) -> pl.Expr:
        return _uniform(stream) < fraction

    frame = (
        _uniform_draws(n_rows, seed)
        .with_row_index("row")
        .with_columns(
            first_name=_pick(FIRST_NAMES, _uniform("first")),
            last_name=_last_name(),
            domain_rank=_choice(_uniform("domain"), shares),
            shape=_choice(_uniform("shape"), LOCAL_PART_SHAPES),
            error_kind=(_uniform("error_kind") * SYNTAX_ERROR_KINDS).cast(pl.Int32),
            local=pl.lit(None, dtype=pl.String),
        )
        .with_columns(domain=pl.lit(pl.Series(names, dtype=pl.String)).gather("domain_rank"))
    )
    shape = pl.col("shape")
    frame = _rewrite(frame, "local", [(shape == k, e) for k, e in enumerate(_local_part_shapes())])
    frame = _rewrite(
        frame,
        "local",
        [
            (
                share("unicode_local", UNICODE_LOCAL_SHARE),
                pl.concat_str(
                    _pick(UNICODE_LOCAL_PARTS, _uniform("unicode_name")),
                    pl.col("local").str.len_bytes().cast(pl.String),
                ),
            ),
            (
                share("quoted_local", QUOTED_LOCAL_SHARE),
                pl.concat_str(pl.lit('"'), "first_name", pl.lit(" "), "last_name", pl.lit('"')),
            ),
            (share("recased_local", RECASED_LOCAL_SHARE), pl.col("local").str.to_titlecase()),
        ],
    )
    frame = _rewrite(
        frame,
        "domain",
        [(share("upper_domain", UPPER_DOMAIN_SHARE), pl.col("domain").str.to_uppercase())],
    )
    frame = frame.with_columns(
        email=pl.concat_str("local", pl.lit("@"), "domain"),
        first_name=pl.col("first_name").str.to_titlecase(),
        last_name=pl.col("last_name").str.to_titlecase(),
    )
    syntax_error = share("syntax_error", SYNTAX_ERROR_SHARE)
    frame = _rewrite(
        frame,
        "email",
        [(syntax_error & (pl.col("error_kind") == k), e) for k, e in enumerate(_syntax_errors())],
    )
    email = pl.col("email")
    frame = _rewrite(
        frame,
        "email",
        [
            (
                share("display_name", DISPLAY_NAME_SHARE),
                pl.concat_str(
                    "first_name", pl.lit(" "), "last_name", pl.lit(" <"), email, pl.lit(">")
                ),
            ),
            (share("mailto", MAILTO_SHARE), pl.concat_str(pl.lit("mailto:"), email)),
        ],
    )
    frame = _rewrite(
        frame,
        "email",
        [(share("leading_space", LEADING_SPACE_SHARE), pl.concat_str(pl.lit(" "), email))],
    )
    frame = _rewrite(
        frame,
        "email",
        [
            (share("trailing_space", TRAILING_SPACE_SHARE), pl.concat_str(email, pl.lit(" "))),
            (share("nbsp", NBSP_SHARE), pl.concat_str(email, pl.lit("\u00a0"))),
            (share("empty", EMPTY_CELL_SHARE), pl.lit(None, dtype=pl.String)),
        ],
    )

    # A duplicate repeats an earlier row's cell (and person), sometimes typed with other capitals.
    duplicate = share("duplicate", DUPLICATE_SHARE)
    row = pl.col("row")
    frame = frame.with_columns(
        source=pl.when(duplicate).then((_uniform("earlier") * row).cast(pl.UInt32)).otherwise(row)
    ).with_columns(pl.col("email", "first_name", "last_name").gather("source"))
    frame = _rewrite(
        frame,
        "email",
        [
            (
                duplicate & share("duplicate_recased", DUPLICATE_RECASED_SHARE),
                email.str.to_uppercase(),
            )
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.select("email", "first_name", "last_name").write_csv(path)
    return path
