"""A session's `channel_type`: PostHog's default channel rules (GA4's, plus its own), as one SQL expression.

The rules (`posthog/hogql/database/schema/channel_type.py`) read the entry event's `utm_source`,
`utm_medium`, `utm_campaign`, `$referring_domain`, `gclid`, `fbclid` and `gad_source`. Where they look a
source or a medium up, PostHog asks its `channel_definition` dictionary: a source or referring domain as
given, then its first significant subdomain (`www.google.co.uk` -> `google.co.uk`); a medium as given.
`MEDIUMS` is that table's medium part in full; `SOURCES` holds the sources most traffic comes from (the
search engines, social networks, video and shopping sites people know), not all of PostHog's thousands: a
rarer source falls through to the rules that follow a failed lookup (`Referral`, `Paid Unknown`, ...).

The rules are written once (`channel_type_sql`); a `ChannelLookups` says how one database writes their lookups
and regular expressions: PostgreSQL's below, ClickHouse's beside its sessions model.
"""

from abc import ABC, abstractmethod

from connectors.sources.params import Params

_SEARCH = ("Paid Search", "Organic Search")
_SOCIAL = ("Paid Social", "Organic Social")
_VIDEO = ("Paid Video", "Organic Video")
_SHOPPING = ("Paid Shopping", "Organic Shopping")

MEDIUMS: dict[str, tuple[str | None, str]] = {
    "affiliate": (None, "Affiliate"), "partnership": (None, "Affiliate"), "partnerships": (None, "Affiliate"),
    "app": (None, "Referral"), "link": (None, "Referral"), "referral": (None, "Referral"),
    "audio": (None, "Audio"),
    "banner": ("Display", "Display"), "cpm": ("Display", "Display"), "display": ("Display", "Display"),
    "expandable": ("Display", "Display"), "interstitial": ("Display", "Display"),
    "e mail": (None, "Email"), "e-mail": (None, "Email"), "e_mail": (None, "Email"), "email": (None, "Email"),
    "mobile": (None, "Push"), "notification": (None, "Push"), "push": (None, "Push"),
    "sm": _SOCIAL, "social": _SOCIAL, "social media": _SOCIAL, "social network": _SOCIAL,
    "social-media": _SOCIAL, "social-network": _SOCIAL,
    "video": _VIDEO,
}  # fmt: skip
"""A medium: (its channel when paid, when organic)."""

SOURCES: dict[str, tuple[str | None, str]] = {
    **dict.fromkeys(
        ("google", "google.com", "bing", "bing.com", "yahoo", "yahoo.com", "search.yahoo.com", "duckduckgo",
         "duckduckgo.com", "baidu", "baidu.com", "yandex", "yandex.ru", "yandex.com", "ecosia.org", "ecosia",
         "search.brave.com", "startpage.com", "qwant.com", "naver", "naver.com", "seznam.cz", "ask", "ask.com",
         "aol", "search.aol.com", "so.360.cn", "sogou.com", "perplexity.ai", "kagi.com"),
        _SEARCH,
    ),
    **dict.fromkeys(
        ("facebook", "facebook.com", "fb", "m.facebook.com", "l.facebook.com", "lm.facebook.com", "instagram",
         "instagram.com", "ig", "twitter", "twitter.com", "t.co", "x.com", "linkedin", "linkedin.com", "lnkd.in",
         "reddit", "reddit.com", "pinterest", "pinterest.com", "tiktok", "tiktok.com", "snapchat", "snapchat.com",
         "threads.net", "bsky.app", "mastodon.social", "news.ycombinator.com", "quora", "quora.com", "tumblr",
         "tumblr.com", "vk.com", "whatsapp", "whatsapp.com", "telegram", "t.me", "discord", "discord.com",
         "medium.com", "bit.ly"),
        _SOCIAL,
    ),
    **dict.fromkeys(
        ("youtube", "youtube.com", "m.youtube.com", "youtu.be", "vimeo", "vimeo.com", "twitch", "twitch.tv",
         "dailymotion", "dailymotion.com", "bilibili.com"),
        _VIDEO,
    ),
    **dict.fromkeys(
        ("amazon", "amazon.com", "amazon.co.uk", "amazon.de", "ebay", "ebay.com", "etsy", "etsy.com", "shopify",
         "shopify.com", "walmart", "walmart.com", "aliexpress", "aliexpress.com", "alibaba", "alibaba.com"),
        _SHOPPING,
    ),
    **dict.fromkeys(
        ("mail.google.com", "gmail", "outlook.live.com", "mail.yahoo.com", "mail.aol.com"), (None, "Email")
    ),
}  # fmt: skip
"""A source (or referring domain): (its channel when paid, when organic)."""

DEFINITIONS = {"source": SOURCES, "medium": MEDIUMS}
"""PostHog's `channel_definition` dictionary, by kind."""

SIGNIFICANT = r"([^.]+\.(?:(?:co|com|net|org|gov|edu|ac|ne|or)\.)?[^.]+)$"
"""A host's first significant subdomain: its registrable part, with the common second-level suffixes."""


class ChannelLookups(ABC):
    """How one database's SQL writes the rules' lookups and regular expressions."""

    @abstractmethod
    def matches(self, text: str, pattern: str) -> str:
        """Whether the text expression matches the regular expression `pattern` (NULL when the text is)."""

    @abstractmethod
    def lookup(self, kind: str, value: str, column: str) -> str:
        """The `column` (`paid` or `organic`) of the `DEFINITIONS[kind]` entry named `value`, NULL without one."""

    @abstractmethod
    def significant(self, host: str) -> str:
        """The host's first significant subdomain (`SIGNIFICANT`), or a value no lookup finds."""


class PostgresChannels(ChannelLookups):
    """Lookups in the `channel_definitions` rows (`definitions_sql`) the query has in scope."""

    def matches(self, text: str, pattern: str) -> str:
        return f"{text} ~ '{pattern}'"  # the rules' own patterns, which hold no quote

    def lookup(self, kind: str, value: str, column: str) -> str:
        return f"(SELECT d.{column} FROM channel_definitions d WHERE d.kind = '{kind}' AND d.name = {value})"

    def significant(self, host: str) -> str:
        return f"substring(coalesce({host}, '') FROM '{SIGNIFICANT}')"


def definitions_sql(p: Params) -> str:
    """The `channel_definitions (name, kind, paid, organic)` rows: sources and mediums, as bound arrays."""
    rows = [(name, kind, *types) for kind, table in DEFINITIONS.items() for name, types in table.items()]
    names, kinds, paid, organic = (list(column) for column in zip(*rows, strict=True))
    return (
        f"SELECT * FROM unnest({p(names, '::text[]')}, {p(kinds, '::text[]')}, {p(paid, '::text[]')}, "
        f"{p(organic, '::text[]')}) AS d(name, kind, paid, organic)"
    )


def channel_type_sql(sql: ChannelLookups, source: str, medium: str, campaign: str, referring_domain: str,
                     has_gclid: str, has_fbclid: str, gad_source: str) -> str:  # fmt: skip
    """The channel of the entry event whose properties these expressions are: text, but for the two booleans
    that say whether it has a `gclid` and an `fbclid`. Source, medium and campaign are compared lower-cased,
    empty and `null` read as missing."""

    def given(expr: str) -> str:
        return f"nullif(nullif({expr}, ''), 'null')"

    def by_source(value: str, column: str) -> str:
        """PostHog's source lookup: the value as given, else its first significant subdomain."""
        significant = sql.significant(value)
        return f"coalesce({sql.lookup('source', value, column)}, {sql.lookup('source', significant, column)})"

    src, med, cam = (f"lower({given(e)})" for e in (source, medium, campaign))
    gad, ref = given(gad_source), referring_domain
    shopping, video = "^(.*(([^a-df-z]|^)shop|shopping).*)$", "^(.*video.*)$"
    return f"""CASE
        WHEN {sql.matches(cam, "cross-network")} THEN 'Cross Network'
        WHEN {med} IN ('cpc', 'cpm', 'cpv', 'cpa', 'ppc', 'retargeting') OR {sql.matches(med, "^paid")}
             OR {has_gclid} OR {gad} IS NOT NULL
        THEN coalesce(
            {by_source(src, "paid")},
            CASE WHEN {sql.matches(cam, shopping)} THEN 'Paid Shopping' END,
            {sql.lookup("medium", med, "paid")},
            {by_source(ref, "paid")},
            CASE WHEN {gad} = '1' THEN 'Paid Search' WHEN {sql.matches(cam, video)} THEN 'Paid Video'
                 WHEN {has_fbclid} THEN 'Paid Social' ELSE 'Paid Unknown' END)
        WHEN {ref} = '$direct' AND {med} IS NULL AND ({src} IS NULL OR {src} IN ('(direct)', 'direct', '$direct'))
             AND NOT {has_fbclid}
        THEN 'Direct'
        ELSE coalesce(
            {by_source(src, "organic")},
            CASE WHEN {sql.matches(cam, shopping)} THEN 'Organic Shopping' END,
            {sql.lookup("medium", med, "organic")},
            {by_source(ref, "organic")},
            CASE WHEN {sql.matches(cam, video)} THEN 'Organic Video' WHEN {sql.matches(med, "push$")} THEN 'Push'
                 WHEN {has_fbclid} THEN 'Organic Social' WHEN {ref} = '$direct' THEN 'Direct'
                 WHEN {ref} IS NOT NULL THEN 'Referral' ELSE 'Unknown' END)
    END"""
