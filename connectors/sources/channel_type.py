"""A session's `channel_type`: PostHog's default channel rules (GA4's, plus its own), as one SQL expression.

The rules (`posthog/hogql/database/schema/channel_type.py`) read the entry event's `utm_source`,
`utm_medium`, `utm_campaign`, `$referring_domain`, `gclid`, `fbclid` and `gad_source`. Where they look a
source or a medium up, PostHog asks its `channel_definition` dictionary: a source or referring domain as
given, then its first significant subdomain (`www.google.co.uk` -> `google.co.uk`); a medium as given.
`MEDIUMS` is that table's medium part in full; `SOURCES` holds the sources most traffic comes from (the
search engines, social networks, video and shopping sites people know), not all of PostHog's thousands: a
rarer source falls through to the rules that follow a failed lookup (`Referral`, `Paid Unknown`, ...).
"""

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

_SIGNIFICANT = r"([^.]+\.(?:(?:co|com|net|org|gov|edu|ac|ne|or)\.)?[^.]+)$"
"""A host's first significant subdomain: its registrable part, with the common second-level suffixes."""


def definitions_sql(p: Params) -> str:
    """The `channel_definitions (name, kind, paid, organic)` rows: sources and mediums, as bound arrays."""
    rows = [(name, "source", *types) for name, types in SOURCES.items()]
    rows += [(name, "medium", *types) for name, types in MEDIUMS.items()]
    names, kinds, paid, organic = (list(column) for column in zip(*rows, strict=True))
    return (
        f"SELECT * FROM unnest({p(names, '::text[]')}, {p(kinds, '::text[]')}, {p(paid, '::text[]')}, "
        f"{p(organic, '::text[]')}) AS d(name, kind, paid, organic)"
    )


def _lookup(kind: str, value: str, column: str) -> str:
    return f"(SELECT d.{column} FROM channel_definitions d WHERE d.kind = '{kind}' AND d.name = {value})"


def _source(value: str, column: str) -> str:
    """PostHog's source lookup: the value as given, else its first significant subdomain."""
    significant = f"substring(coalesce({value}, '') FROM '{_SIGNIFICANT}')"
    return f"coalesce({_lookup('source', value, column)}, {_lookup('source', significant, column)})"


def channel_type_sql(source: str, medium: str, campaign: str, referring_domain: str, gclid: str, fbclid: str,
                     gad_source: str) -> str:  # fmt: skip
    """The channel of the entry event whose properties these text expressions are (`channel_definitions` in
    scope). Source, medium and campaign are compared lower-cased, empty and `null` read as missing."""

    def given(expr: str) -> str:
        return f"nullif(nullif({expr}, ''), 'null')"

    src, med, cam = (f"lower({given(e)})" for e in (source, medium, campaign))
    gad, ref = given(gad_source), referring_domain
    has_gclid, has_fbclid = f"({gclid} IS NOT NULL)", f"({fbclid} IS NOT NULL)"
    shopping = "'^(.*(([^a-df-z]|^)shop|shopping).*)$'"
    return f"""CASE
        WHEN {cam} ~ 'cross-network' THEN 'Cross Network'
        WHEN {med} IN ('cpc', 'cpm', 'cpv', 'cpa', 'ppc', 'retargeting') OR starts_with({med}, 'paid')
             OR {has_gclid} OR {gad} IS NOT NULL
        THEN coalesce(
            {_source(src, "paid")},
            CASE WHEN {cam} ~ {shopping} THEN 'Paid Shopping' END,
            {_lookup("medium", med, "paid")},
            {_source(ref, "paid")},
            CASE WHEN {gad} = '1' THEN 'Paid Search' WHEN {cam} ~ '^(.*video.*)$' THEN 'Paid Video'
                 WHEN {has_fbclid} THEN 'Paid Social' ELSE 'Paid Unknown' END)
        WHEN {ref} = '$direct' AND {med} IS NULL AND ({src} IS NULL OR {src} IN ('(direct)', 'direct', '$direct'))
             AND NOT {has_fbclid}
        THEN 'Direct'
        ELSE coalesce(
            {_source(src, "organic")},
            CASE WHEN {cam} ~ {shopping} THEN 'Organic Shopping' END,
            {_lookup("medium", med, "organic")},
            {_source(ref, "organic")},
            CASE WHEN {cam} ~ '^(.*video.*)$' THEN 'Organic Video' WHEN {med} ~ 'push$' THEN 'Push'
                 WHEN {has_fbclid} THEN 'Organic Social' WHEN {ref} = '$direct' THEN 'Direct'
                 WHEN {ref} IS NOT NULL THEN 'Referral' ELSE 'Unknown' END)
    END"""
