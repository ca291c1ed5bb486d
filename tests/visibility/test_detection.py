"""Mention detection rules (DESIGN.md "Brands and mentions"), each on a hand-written answer."""

from __future__ import annotations

import pytest

from visibility.detection import BrandTerms, Matcher, domain_normalise, source_domain

HUBSPOT = BrandTerms(brand_id=1, terms=("HubSpot", "HubSpot CRM"), domains=("hubspot.com",))
MONDAY = BrandTerms(brand_id=2, terms=("Monday",), domains=("monday.com",), match_case=True)
ZOHO = BrandTerms(brand_id=3, terms=("Zoho", "Zoho One"), domains=("zoho.com",))


def findings(text: str, sources=None, brands=(HUBSPOT, MONDAY, ZOHO)) -> dict[int, tuple]:
    result = Matcher(list(brands)).analyse(text, sources or [])
    return {f.brand_id: (f.mentions, f.first_offset, f.rank, f.citations) for f in result.findings}


@pytest.mark.parametrize(
    "text, mentions",
    [
        ("HubSpot is good", 1),
        ("I like HubSpot.", 1),
        ("(HubSpot)", 1),
        ("HubSpot's pricing", 1),  # possessive
        ("HubSpot’s pricing", 1),  # possessive with a typographic apostrophe
        ("hubspot and HUBSPOT", 2),  # case-insensitive by default
        ("HubSpotter", 0),  # a letter after the term
        ("MyHubSpot", 0),  # a letter before the term
        ("HubSpot2", 0),  # a digit after the term
        ("ÜHubSpot and HubSpotä", 0),  # non-ASCII letters count as letters
        ("HubSpot™ and «HubSpot»", 2),  # symbols and quotes are boundaries
        ("HubSpot CRM rocks", 1),  # the longer alias is one mention, not two
    ],
)
def test_word_boundaries_and_case(text: str, mentions: int) -> None:
    assert findings(text).get(1, (0,))[0] == mentions


def test_match_case_brand_needs_the_exact_case() -> None:
    assert findings("See you on monday or MONDAY") == {}
    assert findings("Monday is a work tool")[2][:3] == (1, 0, 1)


def test_domain_in_text_is_a_mention_in_any_form_and_case() -> None:
    text = "Visit hubspot.com, www.HubSpot.com or https://blog.hubspot.com/x today; not nothubspot.com."
    assert findings(text)[1][0] == 3
    # A match_case brand's domain is matched whatever its case.
    assert findings("go to MONDAY.COM")[2][0] == 1


def test_rank_counts_brands_mentioned_earlier_and_offset_is_the_first_match() -> None:
    text = "Zoho first, then HubSpot, then Zoho again and Monday."
    found = findings(text)
    assert found[3] == (2, 0, 1, 0)
    assert found[1] == (1, text.index("HubSpot"), 2, 0)
    assert found[2] == (1, text.index("Monday"), 3, 0)


def test_no_brand_mentioned_gives_no_findings() -> None:
    assert findings("The best CRM depends on your team.") == {}


def test_cited_sources_count_by_domain_and_subdomain_only_when_cited() -> None:
    sources = [
        {"url": "https://www.hubspot.com/a", "title": "a", "domain": "www.hubspot.com", "cited": True},
        {"url": "https://blog.hubspot.com/b", "title": "b", "domain": "blog.hubspot.com", "cited": True},
        {"url": "https://nothubspot.com/c", "title": "c", "domain": "nothubspot.com", "cited": True},
        {"url": "https://zoho.com/d", "title": "d", "domain": "zoho.com", "cited": False},  # only found
        {"url": "https://eu.zoho.com/e", "title": "e", "domain": "eu.zoho.com"},  # older data: no "cited" = cited
    ]
    result = Matcher([HUBSPOT, MONDAY, ZOHO]).analyse("No names here.", sources)
    by_brand = {f.brand_id: f for f in result.findings}
    assert (by_brand[1].mentioned, by_brand[1].cited, by_brand[1].citations, by_brand[1].rank) == (False, True, 2, None)
    assert by_brand[3].citations == 1
    assert result.cited_domains == ["hubspot.com", "blog.hubspot.com", "nothubspot.com", "eu.zoho.com"]


def test_source_domain_falls_back_to_the_url_and_drops_www_and_port() -> None:
    assert source_domain({"url": "https://WWW.Example.com:8443/x"}) == "example.com"
    assert source_domain({"url": "not a url"}) == ""
    assert source_domain({"url": "http://[bad"}) == ""
    assert domain_normalise("www.hubspot.com.") == "hubspot.com"


def test_two_brands_sharing_a_term_are_both_mentioned() -> None:
    twin = BrandTerms(brand_id=9, terms=("hubspot",))
    assert set(findings("HubSpot!", brands=(HUBSPOT, twin))) == {1, 9}
