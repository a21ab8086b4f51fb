"""Filters, deduplication, a quality score and diversity sampling: fewer good examples beat many noisy ones.

Every conversation keeps a row; `status` is "kept" or the reason it was filtered, so
the funnel is auditable and nothing disappears silently.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

KEPT = "kept"
_WORD = re.compile(r"\w+", re.UNICODE)
_RESOLUTION = re.compile(
    r"\b(i have|i've|you can|go to|within|will|refund|sent|updated|issued|choose|click|settings)\b", re.IGNORECASE)


@dataclass(frozen=True)
class CurationRules:
    min_chars: int = 50
    languages: tuple[str, ...] = ("en",)
    near_dup_threshold: float = 0.8
    shingle_words: int = 5
    num_perm: int = 128
    min_quality: float = 0.3
    target_size: int | None = None  # diversity-sample the kept rows down to this many
    seed: int = 0
    kb_agreement: bool = True  # score replies against the product's KB articles when it has some
    kb_match: float = 0.3  # how alike a ticket's question and a KB question must be for the KB to apply


def conversation_text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def normalized_for_dedup(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def content_hash(text: str) -> str:
    return hashlib.sha256(normalized_for_dedup(text).encode()).hexdigest()[:16]


def detect_language(texts: list[str]) -> list[str]:
    """ISO codes from py3langid, whose model ships inside the package."""
    import py3langid

    return [py3langid.classify(t)[0] for t in texts]


def normalized_csat(csat: float | None) -> float | None:
    """CSAT on a 1-5, 0-10 or 0-100 scale, mapped to 0..1."""
    if csat is None:
        return None
    scale = 5 if csat <= 5 else 10 if csat <= 10 else 100
    low = 1 if scale == 5 else 0
    return max(0.0, min(1.0, (csat - low) / (scale - low)))


def _content_words(text: str) -> Counter:
    from spacy.lang.en.stop_words import STOP_WORDS

    return Counter(w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 2)


def _cosine(a: Counter, b: Counter) -> float:
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def kb_agreement_scores(users: list[str], replies: list[str], is_kb: list[bool], match: float = 0.3,
                        kb_articles: list[tuple[str, str]] | None = None) -> list[float | None]:
    """Per ticket: how much its reply agrees with the answer of the KB article that asks the same thing
    (content-word cosine, scaled so 0.5 counts as full agreement); None where no KB article matches the
    question, and for the KB examples themselves. The articles are the KB rows among these tickets, or
    `kb_articles` ((question, answer) pairs: the product's, when these tickets are one part of it)."""
    pairs = kb_articles if kb_articles is not None else [
        (u, r) for u, r, kb in zip(users, replies, is_kb, strict=True) if kb]
    articles = [(_content_words(u), _content_words(r)) for u, r in pairs]
    scores: list[float | None] = []
    for user, reply, kb in zip(users, replies, is_kb, strict=True):
        if kb or not articles:
            scores.append(None)
            continue
        question = _content_words(user)
        similarity, answer = max(((_cosine(question, q), a) for q, a in articles), key=lambda x: x[0])
        scores.append(round(min(1.0, _cosine(_content_words(reply), answer) / 0.5), 4) if similarity >= match
                      else None)
    return scores


def quality_score(user: str, assistant: str, csat: float | None = None, kb_agreement: float | None = None) -> float:
    """Heuristic 0..1: sane length ratio, no repetition, signs the reply resolves something and addresses
    the question, substance; CSAT and agreement with the knowledge base count as one more component each
    when the source has them."""
    words = _WORD.findall(assistant.lower())
    if not words:
        return 0.0
    ratio = len(assistant) / max(len(user), 1)
    length_ok = 1.0 if 0.5 <= ratio <= 8 else 0.4
    distinct = len(set(words)) / len(words)
    repetition_ok = min(1.0, distinct / 0.6)
    resolves = 1.0 if _RESOLUTION.search(assistant) else 0.3
    substantive = min(1.0, len(words) / 20)
    asked = set(_content_words(user))
    overlap = len(asked & set(words)) / len(asked) if asked else 1.0
    addresses = 1.0 if overlap >= 0.1 else 0.4
    components = [length_ok, repetition_ok, resolves, substantive, addresses]
    satisfaction = normalized_csat(csat)
    if satisfaction is not None:
        components.append(satisfaction)
    if kb_agreement is not None:
        components.append(kb_agreement)
    return round(sum(components) / len(components), 4)


def _shingles(text: str, n: int) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[j:j + n]) for j in range(max(1, len(words) - n + 1))}


@functools.lru_cache(maxsize=4)
def _permutations(num_perm: int):
    """datasketch draws the same permutations for every MinHash of a size; drawing them once per text cost
    a third of the hashing time."""
    from datasketch import MinHash

    template = MinHash(num_perm=num_perm)
    return template.permutations, template.scheme


def minhash_of(text: str, rules: CurationRules):
    from datasketch import MinHash

    permutations, scheme = _permutations(rules.num_perm)
    mh = MinHash(num_perm=rules.num_perm, permutations=permutations, scheme=scheme)
    mh.update_batch([s.encode() for s in _shingles(text, rules.shingle_words)])
    return mh


def minhash_from(signature, rules: CurationRules):
    """The MinHash of a stored signature (near_duplicate_index): the same sketch `minhash_of` gave its text."""
    import numpy
    from datasketch import MinHash

    permutations, scheme = _permutations(rules.num_perm)
    return MinHash(num_perm=rules.num_perm, permutations=permutations, scheme=scheme,
                   hashvalues=numpy.array(signature, dtype=numpy.uint64))


def new_lsh(rules: CurationRules):
    from datasketch import MinHashLSH

    # Weighted towards recall: a missed duplicate costs more (memorised, leaks across splits) than a dropped one.
    return MinHashLSH(threshold=rules.near_dup_threshold, num_perm=rules.num_perm, weights=(0.3, 0.7))


def near_duplicate_of(texts: list[str], rules: CurationRules, lsh=None, first_key: int = 0,
                      sketches: list | None = None) -> list[int | None]:
    """For each text, the key of an earlier near-duplicate (MinHash LSH), else None.

    Keys are positions counted from `first_key`; pass the LSH and key offset of earlier batches to find
    duplicates of texts seen in those batches too. `sketches` (the texts' MinHashes) spares hashing them.
    """
    lsh = lsh if lsh is not None else new_lsh(rules)
    result: list[int | None] = []
    for i, text in enumerate(texts, start=first_key):
        mh = sketches[i - first_key] if sketches is not None else minhash_of(text, rules)
        hits = lsh.query(mh)
        result.append(min(int(h) for h in hits) if hits else None)
        if not hits:
            lsh.insert(str(i), mh)
    return result


_BAND_SEEDS = ((0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9), (0xC2B2AE3D27D4EB4F, 0x94D049BB133111EB))


def _band_hashes(values, seed: tuple[int, int]):
    """One 64-bit hash per row of a (rows, r) uint64 array (a MinHash band), vectorised."""
    import numpy

    mix, mult = numpy.uint64(seed[0]), numpy.uint64(seed[1])
    h = numpy.full(values.shape[0], mix, dtype=numpy.uint64)
    with numpy.errstate(over="ignore"):
        for k in range(values.shape[1]):
            h = (h ^ values[:, k]) * mult
            h ^= h >> numpy.uint64(31)
    return h


class BandIndex:
    """`new_lsh`'s near-duplicate test (datasketch's bands for the threshold and weights: a text is a candidate
    when one band of its MinHash equals that band of an inserted one), with a product's history loaded in one
    vectorised pass: each band of a history row is kept as two independent 64-bit hashes (sorted arrays,
    both must match), rows inserted one by one keep their bands as bytes. It answers `query`/`insert` like
    datasketch's MinHashLSH, so `near_duplicate_of` runs over it unchanged."""

    def __init__(self, rules: CurationRules):
        self.ranges = new_lsh(rules).hashranges
        self._pending: list[list[tuple]] = [[] for _ in self.ranges]  # per band: (h1, h2, keys) not yet sorted
        self._bulk: list[tuple] = []  # per band: (sorted h1, h2 in that order, keys in that order)
        self._exact: list[dict[bytes, list]] = [{} for _ in self.ranges]

    def add_history(self, signatures, keys: list) -> None:
        """Insert many rows at once: `signatures` a (rows, num_perm) uint64 array, `keys` their keys. Only the
        band hashes are kept (2 x 8 bytes per band and row), so a large history can be added part by part."""
        import numpy

        keys = numpy.asarray(keys, dtype=object)
        for band, (start, end) in enumerate(self.ranges):
            values = signatures[:, start:end]
            self._pending[band].append((_band_hashes(values, _BAND_SEEDS[0]), _band_hashes(values, _BAND_SEEDS[1]),
                                        keys))

    def _sorted(self) -> list[tuple]:
        """The history's band hashes, sorted once per batch of `add_history` calls."""
        import numpy

        if self._pending[0]:
            bulk = []
            for band in range(len(self.ranges)):
                batches = ([self._bulk[band]] if self._bulk else []) + self._pending[band]
                h1, h2, keys = (numpy.concatenate([b[i] for b in batches]) for i in range(3))
                order = numpy.argsort(h1, kind="stable")
                bulk.append((h1[order], h2[order], keys[order]))
            self._bulk, self._pending = bulk, [[] for _ in self.ranges]
        return self._bulk

    def insert(self, key, minhash) -> None:
        import numpy

        values = numpy.asarray(minhash.hashvalues, dtype=numpy.uint64)
        for band, (start, end) in enumerate(self.ranges):
            self._exact[band].setdefault(values[start:end].tobytes(), []).append(key)

    def query(self, minhash) -> list:
        import numpy

        found = set()
        values = numpy.asarray(minhash.hashvalues, dtype=numpy.uint64)
        for band, (start, end) in enumerate(self.ranges):
            found.update(self._exact[band].get(values[start:end].tobytes(), ()))
            if self._sorted():
                h1s, h2s, keys = self._bulk[band]
                row = values[start:end].reshape(1, -1)
                h1, h2 = _band_hashes(row, _BAND_SEEDS[0])[0], _band_hashes(row, _BAND_SEEDS[1])[0]
                lo, hi = numpy.searchsorted(h1s, h1, "left"), numpy.searchsorted(h1s, h1, "right")
                found.update(keys[i] for i in range(lo, hi) if h2s[i] == h2)
        return list(found)


@dataclass
class DedupState:
    """What exact and near dedup remember between batches of one stream (see `score_in_batches`)."""

    seen_hashes: set[str]
    lsh: object
    next_key: int = 0

    @classmethod
    def empty(cls, rules: CurationRules) -> DedupState:
        return cls(set(), new_lsh(rules))


INDEX_SETTINGS = ("near_dup_threshold", "num_perm", "shingle_words")


class IndexSettingsMismatch(ValueError):
    """The near-duplicate index's partitions were built with different settings."""


def reusable_signatures(previous: pl.DataFrame | None, rules: CurationRules) -> dict[str, list[int]]:
    """Signatures of an earlier index made with the same settings, by content hash (else none)."""
    if previous is None or previous.height == 0 or "content_hash" not in previous.columns:
        return {}
    same = previous.filter((pl.col("near_dup_threshold") == rules.near_dup_threshold)
                           & (pl.col("num_perm") == rules.num_perm) & (pl.col("shingle_words") == rules.shingle_words))
    return dict(zip(same["content_hash"].to_list(), same["signature"].to_list(), strict=True))


def signature_frame(cleaned: pl.DataFrame, rules: CurationRules,
                    known: dict[str, list[int]] | None = None) -> pl.DataFrame:
    """One MinHash signature per conversation that has a user and an assistant turn (what curation could
    keep), with its ticket id (so `tuneline forget` removes it like any other row) and the settings that made
    it: the `near_duplicate_index` asset's value for one product. Identical texts share one signature; a
    text in `known` (the previous index, same settings) is not hashed again."""
    conversations = [m if isinstance(m, list) else m.to_list() for m in cleaned["messages"].to_list()]
    ids = cleaned["ticket_id"].to_list() if "ticket_id" in cleaned.columns else [None] * len(conversations)
    by_hash: dict[str, list[int]] = {}
    known = known or {}
    rows = []
    for ticket, conversation in zip(ids, conversations, strict=True):
        if not {"user", "assistant"} <= {turn["role"] for turn in conversation}:
            continue
        text = conversation_text(conversation)
        key = content_hash(text)
        if key not in by_hash:
            by_hash[key] = list(known[key]) if key in known else [int(v) for v in minhash_of(text, rules).hashvalues]
        rows.append((ticket, key))
    return pl.DataFrame({
        "ticket_id": [t for t, _ in rows], "content_hash": [k for _, k in rows],
        "signature": [by_hash[k] for _, k in rows],
        "near_dup_threshold": [rules.near_dup_threshold] * len(rows), "num_perm": [rules.num_perm] * len(rows),
        "shingle_words": [rules.shingle_words] * len(rows),
    }, schema={"ticket_id": pl.String, "content_hash": pl.String, "signature": pl.List(pl.UInt64),
               "near_dup_threshold": pl.Float64, "num_perm": pl.Int64, "shingle_words": pl.Int64})


def index_settings(frames: dict[str, pl.DataFrame]) -> dict | None:
    """The one dedup configuration the index partitions were built with (None when they hold nothing);
    partitions built with different settings are an error that names them, never a silent mix."""
    found: dict[tuple, list[str]] = {}
    for product, frame in sorted(frames.items()):
        for row in frame.select(INDEX_SETTINGS).unique().iter_rows():
            found.setdefault(tuple(row), []).append(product)
    if len(found) > 1:
        described = "; ".join(f"{dict(zip(INDEX_SETTINGS, k, strict=True))}: {', '.join(v)}" for k, v in found.items())
        raise IndexSettingsMismatch(
            f"near_duplicate_index partitions were built with different settings ({described}); rebuild it over "
            "every product with one configuration (backfill near_duplicate_index) before scoring")
    return dict(zip(INDEX_SETTINGS, next(iter(found)), strict=True)) if found else None


class CrossProductIndex:
    """MinHash bands (`BandIndex`) over the `near_duplicate_index` partitions of other products. A conversation
    that two products share belongs to the product whose key sorts first; the others mark it
    `cross_product_duplicate`. The rule does not depend on the order products are materialized in, so a
    backfill in any order gives the same splits, and no product's entries can be lost by another's write
    (each partition is its own file)."""

    def __init__(self, frames: Mapping[str, pl.DataFrame | Iterable[pl.DataFrame]], rules: CurationRules):
        """`frames`: each product's index, one frame or its parts one at a time (only band hashes are kept)."""
        import numpy

        self.rules = rules
        self.lsh = BandIndex(rules)
        self.size = 0
        for product, value in frames.items():
            for frame in [value] if isinstance(value, pl.DataFrame) else value:
                rows = frame.select("content_hash", "signature").unique("content_hash", keep="first")
                if rows.height:
                    matrix = rows["signature"].list.to_array(rules.num_perm).to_numpy().astype(numpy.uint64)
                    self.lsh.add_history(matrix, [f"{product}/{c}" for c in rows["content_hash"].to_list()])
                    self.size += rows.height

    def __len__(self) -> int:
        return self.size

    def owned_elsewhere(self, text: str, product: str, sketch=None) -> list[str]:
        """Keys of near duplicates in products that sort before `product` (they keep the conversation)."""
        hits = self.lsh.query(sketch if sketch is not None else minhash_of(text, self.rules))
        return sorted(h for h in hits if h.split("/", 1)[0] < product)


def sentiment_bucket(texts: list[str]) -> list[str]:
    """neg / neu / pos from VADER's lexicon (ships in the vaderSentiment package)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    buckets = []
    for text in texts:
        compound = analyzer.polarity_scores(text)["compound"]
        buckets.append("neg" if compound <= -0.05 else "pos" if compound >= 0.05 else "neu")
    return buckets


def topic_of(metadata_json: str | None, product: str | None) -> str:
    metadata = json.loads(metadata_json) if metadata_json else {}
    return str(metadata.get("intent") or metadata.get("category") or product or "general")


def difficulty_of(turns: int, chars: int) -> str:
    if turns > 2:
        return "multi_turn"
    return "short" if chars < 300 else "medium" if chars < 700 else "long"


def diversity_sample(frame: pl.DataFrame, target_size: int, seed: int = 0) -> set[int]:
    """Row positions to keep: round-robin over (topic, difficulty, sentiment) strata, best quality first,
    so the sample is as even across strata as the data allows."""
    strata: dict[tuple, list[tuple[float, int]]] = {}
    for i, row in enumerate(frame.select("topic", "difficulty", "sentiment", "quality_score").iter_rows()):
        strata.setdefault(row[:3], []).append((row[3], i))
    rng = random.Random(seed)
    queues = []
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)  # ties in quality are broken at random, reproducibly
        queues.append(sorted(members, key=lambda m: -m[0]))
    chosen: set[int] = set()
    while len(chosen) < target_size and any(queues):
        for queue in queues:
            if queue and len(chosen) < target_size:
                chosen.add(queue.pop(0)[1])
    return chosen


def distribution(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return dict(sorted(frame.group_by(column).len().iter_rows())) if frame.height else {}


@functools.lru_cache(maxsize=1)
def text_features_digest() -> str:
    """What decides a conversation's language and sentiment besides its text: the two functions' source and
    the versions of the packages whose models they run. Features are reused only under the same digest."""
    import inspect
    from importlib.metadata import version

    parts = [inspect.getsource(detect_language), inspect.getsource(sentiment_bucket),
             f"py3langid=={version('py3langid')}", f"vaderSentiment=={version('vaderSentiment')}"]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def messages_digest(conversation: list[dict]) -> str:
    """A conversation's exact turns (roles and texts, nothing normalized): the key its text features are kept by."""
    return hashlib.sha256(json.dumps([[t["role"], t["content"]] for t in conversation]).encode()).hexdigest()


def reusable_text_features(previous: pl.DataFrame | None) -> dict[str, tuple[str, str]]:
    """{messages digest: (language, sentiment)} of the previous scored_dataset under the same feature digest."""
    if previous is None or not {"messages_sha256", "features_with", "language", "sentiment"} <= set(previous.columns):
        return {}
    same = previous.filter(pl.col("features_with") == text_features_digest())
    return {key: (language, sentiment) for key, language, sentiment
            in same.select("messages_sha256", "language", "sentiment").iter_rows()}


def score_conversations(cleaned: pl.DataFrame, rules: CurationRules = CurationRules(),
                        index: CrossProductIndex | None = None, product: str | None = None,
                        judge=None, dedup: DedupState | None = None,
                        signatures: Mapping[str, list[int]] | None = None,
                        features: Mapping[str, tuple[str, str]] | None = None,
                        kb_articles: list[tuple[str, str]] | None = None) -> pl.DataFrame:
    """Add text, language, hash, quality, strata and a `status` per row; filters apply in funnel order.

    `dedup` carries exact and near dedup across calls: a row that duplicates one of an earlier call's
    rows is marked as a duplicate too (streaming a partition too large for one frame). `signatures`
    ({content hash: MinHash signature}, the product's near_duplicate_index under the same settings) spares
    hashing those texts again; `features` (`reusable_text_features`) spares detecting language and sentiment
    of conversations scored before; `kb_articles` (`kb_articles_of`) are the product's KB articles when
    `cleaned` is one part of it.
    """
    conversations = [m if isinstance(m, list) else m.to_list() for m in cleaned["messages"].to_list()]
    n = len(conversations)
    texts = [conversation_text(c) for c in conversations]
    users = [" ".join(t["content"] for t in c if t["role"] == "user") for c in conversations]
    replies = [" ".join(t["content"] for t in c if t["role"] == "assistant") for c in conversations]
    keys = [messages_digest(c) for c in conversations]
    features = features or {}
    fresh = [i for i in range(n) if keys[i] not in features]
    measured = dict(zip(fresh, zip(detect_language([texts[i] for i in fresh]),
                                   sentiment_bucket([users[i] for i in fresh]), strict=True), strict=True))
    languages = [features[keys[i]][0] if i not in measured else measured[i][0] for i in range(n)]
    sentiments = [features[keys[i]][1] if i not in measured else measured[i][1] for i in range(n)]
    hashes = [content_hash(t) for t in texts]
    csats = cleaned["csat"].to_list() if "csat" in cleaned.columns else [None] * n
    is_kb = (cleaned["source_kind"] == "kb").to_list() if "source_kind" in cleaned.columns else [False] * n
    agreement = kb_agreement_scores(users, replies, is_kb, rules.kb_match, kb_articles) if rules.kb_agreement \
        else [None] * n
    scores = [quality_score(u, a, c, k) for u, a, c, k in zip(users, replies, csats, agreement, strict=True)]
    metadata = cleaned["metadata"].to_list() if "metadata" in cleaned.columns else [None] * n
    products = cleaned["product"].to_list() if "product" in cleaned.columns else [product] * n

    status: list[str] = []
    dedup = dedup if dedup is not None else DedupState.empty(rules)
    seen_hashes = dedup.seen_hashes
    survivors: list[int] = []
    for i in range(n):
        if not users[i] or not replies[i]:
            status.append("empty_after_cleaning")
        elif len(users[i]) + len(replies[i]) < rules.min_chars:
            status.append("too_short")
        elif languages[i] not in rules.languages:
            status.append(f"language_{languages[i]}")
        elif hashes[i] in seen_hashes:
            status.append("exact_duplicate")
        else:
            seen_hashes.add(hashes[i])
            status.append(KEPT)
            survivors.append(i)
    signatures = signatures or {}
    sketches = [minhash_from(signatures[hashes[i]], rules) if hashes[i] in signatures else minhash_of(texts[i], rules)
                for i in survivors]
    near = near_duplicate_of([texts[i] for i in survivors], rules, dedup.lsh, dedup.next_key, sketches)
    dedup.next_key += len(survivors)
    for position, earlier in enumerate(near):
        i = survivors[position]
        if earlier is not None:
            status[i] = "near_duplicate"
        elif index is not None and index.owned_elsewhere(texts[i], product or products[i] or "", sketches[position]):
            status[i] = "cross_product_duplicate"
    judged: list[float | None] = [None] * n
    if judge is not None:  # only the rows that survived the cheap filters cost a judge call
        from tuneline.judge import mean_rubric

        for i in range(n):
            if status[i] == KEPT:
                judged[i] = mean_rubric(judge.score(users[i], replies[i]))
                if judged[i] is not None:
                    scores[i] = round((scores[i] + judged[i]) / 2, 4)
    for i in range(n):
        if status[i] == KEPT and scores[i] < rules.min_quality:
            status[i] = "low_quality"
    scored = cleaned.with_columns(
        pl.Series("conversation_text", texts, dtype=pl.String),
        pl.Series("language", languages, dtype=pl.String),
        pl.Series("content_hash", hashes, dtype=pl.String),
        pl.Series("quality_score", scores, dtype=pl.Float64),
        pl.Series("kb_agreement", agreement, dtype=pl.Float64),
        pl.Series("judge_score", judged, dtype=pl.Float64),
        pl.Series("topic", [topic_of(m, p) for m, p in zip(metadata, products, strict=True)], dtype=pl.String),
        pl.Series("difficulty", [difficulty_of(len(c), len(t)) for c, t in zip(conversations, texts, strict=True)],
                  dtype=pl.String),
        pl.Series("sentiment", sentiments, dtype=pl.String),
        pl.Series("status", status, dtype=pl.String),
        pl.Series("messages_sha256", keys, dtype=pl.String),
        pl.lit(text_features_digest(), dtype=pl.String).alias("features_with"),
    )
    kept_positions = [i for i, s in enumerate(status) if s == KEPT]
    if rules.target_size is not None and len(kept_positions) > rules.target_size:
        chosen = diversity_sample(scored[kept_positions], rules.target_size, rules.seed)
        for j, i in enumerate(kept_positions):
            if j not in chosen:
                status[i] = "not_sampled"
        scored = scored.with_columns(pl.Series("status", status, dtype=pl.String))
    return scored


def score_in_batches(batches, redactor, rules: CurationRules = CurationRules(),
                     product_names: dict[str, str] | None = None):
    """Clean and score raw frames one batch at a time, yielding each scored batch.

    Memory stays bounded by the batch plus the dedup state (hashes and MinHash bands of the kept rows), so
    a partition of a million tickets fits a laptop; duplicates are found across batches, and the redactor's
    sentence cache carries over too. Diversity sampling needs the whole partition, so `target_size` is
    refused here.
    """
    from tuneline.cleaning import clean_conversations

    if rules.target_size is not None:
        raise ValueError("score_in_batches cannot diversity-sample (target_size): it never holds the whole set")
    state = DedupState.empty(rules)
    for raw in batches:
        yield score_conversations(clean_conversations(raw, redactor, product_names), rules, dedup=state)


def kb_articles_of(cleaned: pl.DataFrame) -> list[tuple[str, str]]:
    """(question, answer) of the KB rows of a cleaned frame, in order: what `kb_agreement_scores` compares to."""
    if "source_kind" not in cleaned.columns:
        return []
    rows = cleaned.filter(pl.col("source_kind") == "kb")["messages"].to_list()
    conversations = [m if isinstance(m, list) else m.to_list() for m in rows]
    return [(" ".join(t["content"] for t in c if t["role"] == "user"),
             " ".join(t["content"] for t in c if t["role"] == "assistant")) for c in conversations]


BASIC_FILTERS = ("empty_after_cleaning", "too_short", "language_")
PASSED_NEAR_DEDUP = (KEPT, "cross_product_duplicate", "low_quality", "not_sampled")


def dedup_state_of(scored_parts: list[pl.DataFrame], signature_parts, rules: CurationRules) -> DedupState:
    """The exact and near dedup state after these scored parts, as `score_conversations` left it: the hashes
    of every row that passed the basic filters, and in the band index every row that passed near dedup, its
    signature taken from the product's near_duplicate_index (`signature_parts`: frames with content_hash and
    signature, read one at a time, so only band hashes of the history are held)."""
    import numpy

    seen: set[str] = set()
    inserted: list[str] = []
    for part in scored_parts:
        passed = part.filter(~pl.any_horizontal(pl.col("status").str.starts_with(prefix) for prefix in BASIC_FILTERS))
        seen.update(passed["content_hash"].to_list())
        inserted += passed.filter(pl.col("status").is_in(PASSED_NEAR_DEDUP))["content_hash"].to_list()
    index = BandIndex(rules)
    wanted = pl.DataFrame({"content_hash": inserted, "key": range(len(inserted))}, schema={
        "content_hash": pl.String, "key": pl.Int64})
    for signatures in signature_parts:
        rows = wanted.join(signatures.select("content_hash", "signature").unique("content_hash", keep="first"),
                           on="content_hash", how="inner")
        wanted = wanted.join(rows.select("content_hash"), on="content_hash", how="anti")
        if rows.height:
            matrix = rows["signature"].list.to_array(rules.num_perm).to_numpy().astype(numpy.uint64)
            index.add_history(matrix, rows["key"].to_list())
    if wanted.height:
        raise ValueError(f"near_duplicate_index lacks the signatures of {wanted.height} scored rows: rebuild it")
    return DedupState(seen, index, len(inserted))


FUNNEL_STAGES = (("raw", ()), ("after_basic_filters", ("empty_after_cleaning", "too_short", "language_")),
                 ("after_dedup", ("exact_duplicate", "near_duplicate", "cross_product_duplicate")),
                 ("after_scoring", ("low_quality",)), ("final", ("not_sampled",)))


def funnel(scored: pl.DataFrame) -> dict[str, int]:
    """Rows surviving each stage, in order: raw -> ... -> final."""
    statuses = scored["status"].to_list()
    remaining = len(statuses)
    result = {}
    for stage, prefixes in FUNNEL_STAGES:
        remaining -= sum(1 for s in statuses if prefixes and s.startswith(prefixes))
        result[stage] = remaining
    return result
