"""Deterministic mention detection: which tracked brands an answer mentions, where, and which it cites.

Pure code, no database and no model call: the same answer and brands always give the same result.
Bump ANALYSIS_VERSION whenever a rule here changes, so stored results show which method made them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ANALYSIS_VERSION = 1
_DOMAIN_CACHE_SIZE = 10_000

# "Not a letter or digit" on either side, Unicode-aware: [^\W_] is exactly the letters and digits.
_BEFORE_FIRST = r"(?<![^\W_][\s\S])"  # placed after a term's first character
_AFTER = r"(?![^\W_])"


@dataclass(frozen=True)
class BrandTerms:
    """What the matcher needs of a brand: its id, its terms (name + aliases) and its domains."""

    brand_id: int
    terms: tuple[str, ...]
    domains: tuple[str, ...] = ()
    match_case: bool = False


@dataclass
class BrandFinding:
    """Per (answer, brand); `rank` is filled once every brand of the answer is known."""

    brand_id: int
    mentions: int = 0
    first_offset: int | None = None
    rank: int | None = None
    citations: int = 0

    @property
    def mentioned(self) -> bool:
        return self.mentions > 0

    @property
    def cited(self) -> bool:
        return self.citations > 0


@dataclass
class AnswerAnalysis:
    findings: list[BrandFinding]  # only brands mentioned or cited, in brand order
    cited_domains: list[str] = field(default_factory=list)  # distinct, less www., in citation order


def domain_normalise(host: str) -> str:
    """Lower case, no trailing dot, no port, no leading `www.`: the form brand domains and sources compare in."""
    host = host.strip().lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        host = host.split(":", 1)[0]
    return host[4:] if host.startswith("www.") else host


def source_domain(source: dict) -> str:
    """A source's domain: its `domain` field, else the host of its `url`; '' when neither says."""
    domain = source.get("domain")
    if not isinstance(domain, str) or not domain.strip():
        url = source.get("url")
        domain = ""
        if isinstance(url, str):
            try:
                domain = urlsplit(url).hostname or ""
            except ValueError:  # a malformed URL (bad port, bad IPv6) names no domain
                pass
    return domain_normalise(domain)


def source_is_cited(source: dict) -> bool:
    # Sources stored before "cited" existed were all cited by the answer.
    return source.get("cited", True) is not False


class Matcher:
    """Compiled regular expressions for a workspace's whole brand set, built once and reused.

    Speed matters (every answer, and 100,000 stored answers after a brand edit), and Python's
    `re` tries alternatives one by one, so the terms are folded into a prefix tree with the
    word-boundary check placed after the first character: `re` then skips straight to the
    positions where some term's first character stands. Case-insensitive terms are matched
    case-sensitively against a lower-cased copy of the text (case-insensitive matching would turn
    that skipping off); `match_case` terms against the text as written. Each term ends in an empty
    capturing group whose number (`lastindex`) maps the match back to its brands. Longer
    continuations are tried before a term's end and overlaps are resolved longest-first, so at
    one position the longest term wins ("HubSpot CRM" over "HubSpot", "hubspot.com" over
    "HubSpot") and one stretch of text is never counted twice.
    """

    def __init__(self, brands: Sequence[BrandTerms]) -> None:
        self.brands = list(brands)
        insensitive: dict[str, list[int]] = {}
        sensitive: dict[str, list[int]] = {}
        for index, brand in enumerate(self.brands):
            for term in brand.terms:
                term = term.strip()
                if term and brand.match_case:
                    sensitive.setdefault(term, []).append(index)
                elif term:
                    insensitive.setdefault(_lower(term), []).append(index)
            for domain in brand.domains:  # domains are case-insensitive whatever the brand's case rule
                domain = domain_normalise(domain)
                if domain:
                    insensitive.setdefault(domain, []).append(index)
        self._insensitive = _TermTree(insensitive)
        self._sensitive = _TermTree(sensitive)
        self._domains: list[tuple[str, int]] = [
            (domain_normalise(domain), index) for index, brand in enumerate(self.brands) for domain in brand.domains
        ]
        self._domain_brands: dict[str, tuple[int, ...]] = {}

    def matches(self, text: str) -> list[tuple[int, int, list[int]]]:
        """Non-overlapping (start, end, brand indexes), in text order."""
        found = self._insensitive.finditer(_lower(text)) + self._sensitive.finditer(text)
        if not (self._insensitive.regex and self._sensitive.regex):
            return found  # one pass never overlaps itself
        found.sort(key=lambda match: (match[0], -match[1]))
        kept: list[tuple[int, int, list[int]]] = []
        for match in found:
            if not kept or match[0] >= kept[-1][1]:
                kept.append(match)
        return kept

    def analyse(self, text: str, sources: Iterable[dict] | None) -> AnswerAnalysis:
        # Runs for every recorded answer: only brands found get a finding, and each domain's brands
        # are looked up once per matcher.
        findings: dict[int, BrandFinding] = {}
        for start, _end, brand_indexes in self.matches(text or ""):
            for index in brand_indexes:
                finding = findings.get(index)
                if finding is None:
                    finding = findings[index] = BrandFinding(brand_id=self.brands[index].brand_id, first_offset=start)
                finding.mentions += 1
        cited_domains: dict[str, None] = {}
        for source in sources or ():
            if not isinstance(source, dict) or not source_is_cited(source):
                continue
            domain = source_domain(source)
            if not domain:
                continue
            cited_domains[domain] = None
            for index in self._brands_of_domain(domain):
                finding = findings.get(index)
                if finding is None:
                    finding = findings[index] = BrandFinding(brand_id=self.brands[index].brand_id)
                finding.citations += 1
        offsets = sorted(f.first_offset for f in findings.values() if f.first_offset is not None)
        for finding in findings.values():
            if finding.first_offset is not None:
                finding.rank = 1 + bisect.bisect_left(offsets, finding.first_offset)
        return AnswerAnalysis(findings=[findings[index] for index in sorted(findings)], cited_domains=list(cited_domains))

    def _brands_of_domain(self, domain: str) -> tuple[int, ...]:
        """The indexes of the brands a cited domain cites (equal to one of theirs, or a subdomain of it)."""
        cited = self._domain_brands.get(domain)
        if cited is None:
            cited = tuple(sorted({
                index for brand_domain, index in self._domains
                if domain == brand_domain or domain.endswith("." + brand_domain)
            }))
            if len(self._domain_brands) >= _DOMAIN_CACHE_SIZE:
                self._domain_brands.clear()
            self._domain_brands[domain] = cited
        return cited


def _lower(text: str) -> str:
    """Lower case with every offset kept: the few characters whose lower case is longer stay as they are."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low) == 1 else char for char, low in ((char, char.lower()) for char in text))


class _TermTree:
    """One regular expression for a set of terms, folded into a prefix tree (see Matcher)."""

    def __init__(self, terms: dict[str, list[int]]) -> None:
        self._group_brands: list[list[int]] = []
        root: dict = {}
        for term, brand_indexes in terms.items():
            node = root
            for char in term:
                node = node.setdefault(char, {})
            node[""] = brand_indexes  # "" marks the end of a term; no real edge is empty
        self.regex = re.compile(self._emit(root, top=True)) if terms else None

    def _emit(self, node: dict, *, top: bool = False) -> str:
        # At the top, the boundary check follows the first character: a pattern that starts with
        # plain characters lets `re` jump to candidate positions instead of trying every one.
        after_first = _BEFORE_FIRST if top else ""
        alternatives = [
            re.escape(char) + after_first + self._emit(child) for char, child in sorted(node.items()) if char
        ]
        if "" in node:
            # Groups are numbered in the order they appear, which is the order they are emitted.
            self._group_brands.append(node[""])
            alternatives.append(f"{_AFTER}()")
        return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"

    def finditer(self, text: str) -> list[tuple[int, int, list[int]]]:
        if self.regex is None:
            return []
        return [(m.start(), m.end(), self._group_brands[m.lastindex - 1]) for m in self.regex.finditer(text)]
