"""Lexicon-constrained end-to-end spotting, as the field reports it: ICDAR 2015 Strong / Weak / Generic and
Total-Text / CTW1500 Full lexicons, three named matching rules, exact and vectorised.

This module needs numpy and shapely (through :mod:`fasttcm.evaluation.text_eval`, the metric it feeds), no torch
and no detectron2. The full description, in prose, is ``docs/LEXICONS.md``. :func:`evaluate_spotting` computes
the whole row a paper prints (detection, end to end and word spotting with no lexicon and with each lexicon) and
:func:`format_spotting_table` prints it; ``tools/evaluate_text.py`` and the ``TextDetEvaluator`` use both.

Lexicon files (UTF-8 with or without a BOM; LF, CR/LF or CR line ends; blank lines skipped)
-------------------------------------------------------------------------------------------
Word list (``GenericVocabulary.txt``, ``ch4_test_vocabulary.txt``, ``voc_img_N.txt``, and the rewritten
``*_new.txt`` / ``new_voc_img_N.txt`` / ``weak_voc_new.txt``)
    One word per line; white space around it is stripped. A line with white space *inside* the word raises
    ``ValueError`` naming ``file:line`` (it is most likely a pair list given as a word list).
Pair list (``*_pair_list.txt``, ``pair_voc_img_N.txt``)
    One ``WORD ORIGINAL`` per line: the word as it appears in the word list (punctuation stripped, the form a
    recogniser without punctuation classes outputs), one or more spaces or tabs, then the original form, which
    is what gets submitted. The original is the rest of the line, so it may contain spaces (``NEWYORK New York``).
    The kits read it as ``key = line.split(' ')[0].upper()``, ``original = line[len(key) + 1:]`` (or the
    equivalent ``' '.join(line.split(' ')[1:])``): identical here for a single space; with several spaces or a
    tab between the two fields the kits would keep the extra white space in the submitted word, fasttcm does not.
    Keys are compared upper-cased. A line with a single field raises ``ValueError`` naming ``file:line``. Two
    lines with the same key and different originals: the later one wins (as the kits' dictionaries do), counted
    in ``Lexicon.warnings["pair_conflicts"]`` and logged. A word of the word list whose upper-cased form has no
    pair raises ``ValueError`` naming the word's ``file:line`` and the pair list (``missing_pair="warn"``: the
    word itself is submitted, counted in ``warnings["missing_pairs"]``).
An empty lexicon (no word) raises ``ValueError`` naming the file. Bytes that are not UTF-8 raise ``ValueError``
naming ``file:line``.

Matching (all rules compare the upper-cased detection text with the upper-cased lexicon words)
--------------------------------------------------------------------------------------------
``"adelaidet"`` (default)
    The nearest word by Levenshtein distance (unit insert/delete/substitute on Unicode code points); kept when
    the distance is below ``max_distance`` = 1.5 (so at most one edit), else the detection is dropped.
``"replace"``
    The nearest word, always (``max_distance=None``).
``"weighted"``
    Mask TextSpotter's rule. Shortlist: the words whose Levenshtein distance is at most the minimum + 2
    (:data:`WEIGHTED_SHORTLIST_MARGIN`). Among them, the smallest weighted distance :func:`weighted_edit_distance`
    (needs the recogniser's per-character probabilities); kept when it is below ``max_distance`` = 1.5. Mask
    TextSpotter's scripts always keep on Generic: pass ``max_distance=None`` there to reproduce them.
Ties: the first word in lexicon (file) order wins, for every rule and both distances. Words whose upper-cased forms
coincide count once, at their first position. The replaced text is the word's submitted form (its pair-list
original, else the word as written in the file).

Speed: Levenshtein distances are computed for the whole lexicon at once with Myers' bit-parallel algorithm
(Hyyrö's formulation for the global distance) in numpy, one uint64 bit-vector per lexicon word of up to 64
characters (longer words, which real lexicons do not have, use the plain DP), words bucketed by length and
buckets skipped when ``|len(word) - len(text)|`` cannot beat (or tie earlier than) the best so far. Weighted
distances are a float64 DP vectorised over the shortlist. Both give exactly the values of the plain Python
DPs :func:`levenshtein` and :func:`weighted_edit_distance` (same operations in the same order), ties included.

Detections (input of :func:`apply_lexicon`)
-------------------------------------------
``{image id: [word, ...]}``; a word is a :class:`~fasttcm.evaluation.text_eval.TextItem` or any object with a
``text`` attribute (optionally ``score``, ``char_probs``), a dict with ``"text"`` (and ``"points"`` or
``"polygon"``, optionally ``"score"``, ``"char_probs"``), or a tuple ``(points, text[, score])``. Points are
passed through untouched (any shape the evaluator takes, e.g. (N, 2) float64 pixels). ``char_probs`` (weighted
rule only): array-like (len(text), C), row ``j`` the recogniser's probabilities for character ``j`` of the text,
column ``k`` for character ``charset[k]`` (``charset``: a str of C characters given to :func:`apply_lexicon`).
The result's words are of the same kind as the input's, with ``text`` replaced.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import text_eval as te

logger = logging.getLogger(__name__)

__all__ = [
    "RULES",
    "DEFAULT_RULE",
    "DEFAULT_MAX_DISTANCE",
    "WEIGHTED_SHORTLIST_MARGIN",
    "WEIGHTED_SUBSTITUTION_FACTOR",
    "LEXICON_NAMES",
    "DATASET_LEXICONS",
    "KIT_FILES",
    "STRONG_FOLDERS",
    "DATASET_FOLDERS",
    "LexiconLike",
    "Lexicon",
    "PerImageLexicon",
    "LexiconMatch",
    "LexiconResult",
    "CharProbabilities",
    "levenshtein",
    "weighted_edit_distance",
    "resolve_max_distance",
    "read_word_list",
    "read_pair_list",
    "load_lexicon",
    "load_strong_lexicons",
    "find_lexicon_files",
    "load_lexicon_dir",
    "load_lexicons",
    "parse_lexicon_arg",
    "apply_lexicon",
    "evaluate_spotting",
    "format_spotting_table",
]

#: the matching rules (see the module docstring)
RULES = ("adelaidet", "replace", "weighted")
DEFAULT_RULE = "adelaidet"
#: keep a match when its distance is below this (None: always keep)
DEFAULT_MAX_DISTANCE: Dict[str, Optional[float]] = {"adelaidet": 1.5, "replace": None, "weighted": 1.5}
#: the weighted rule's shortlist: words with Levenshtein distance <= minimum + this
WEIGHTED_SHORTLIST_MARGIN = 2
#: the weighted rule's substitution cost is max(0, 1 - p(new) / p(old) * this)
WEIGHTED_SUBSTITUTION_FACTOR = 5.0
#: lexicon kinds, in the order a result table lists them
LEXICON_NAMES = ("strong", "weak", "generic", "full")
#: which lexicons each protocol reports
DATASET_LEXICONS = {"icdar15": ("strong", "weak", "generic"), "totaltext": ("full",), "ctw1500": ("full",)}

_MAX_MESSAGES = 100
_MYERS_BITS = 64
_FLAT_MAX_KEYS = 2048  # up to this many distinct words: one vector, no length buckets
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_ONE = np.uint64(1)
_WS = re.compile(r"\s")
_PAIR = re.compile(r"([^ \t]+)[ \t]+(.+)", re.DOTALL)


# ------------------------------------------------------------------------------------ plain references --
def levenshtein(a: str, b: str) -> int:
    """Levenshtein distance of two strings (unit costs, Unicode code points), as a plain Python DP.

    This is the reference the vectorised search is tested against; it does not upper-case."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


class CharProbabilities:
    """A recogniser's per-character probabilities for one transcription, as the weighted rule reads them.

    ``probs``: (m, C) non-negative finite floats, row ``j`` for character ``j`` of the transcription, column ``k``
    for character ``charset[k]``. Characters are looked up upper-cased: the probability of ``c`` at position
    ``j`` is the sum of row ``j`` over the columns whose character upper-cases to ``c`` (the case-insensitive
    probability; a charset character whose upper-case form is not one character is looked up as itself); a
    character not in the charset has probability 0.

    ``table``: (m, U + 1) float64, one column per distinct upper-cased charset character and a last column of
    zeros; ``column(ch)`` its column for a character."""

    def __init__(self, probs, charset: str):
        if hasattr(probs, "detach"):  # torch tensor, without importing torch
            probs = probs.detach().cpu().numpy()
        p = np.asarray(probs, dtype=np.float64)
        if not isinstance(charset, str) or not charset:
            raise ValueError("charset must be a non-empty str (one character per probability column)")
        if p.ndim != 2 or p.shape[1] != len(charset):
            raise ValueError(f"char_probs must have shape (len(text), {len(charset)}) for a charset of "
                             f"{len(charset)} characters, got {p.shape}")
        if not np.isfinite(p).all() or (p < 0).any():
            raise ValueError("char_probs must be finite and non-negative")
        cols: Dict[str, int] = {}
        members: List[List[int]] = []
        for k, ch in enumerate(charset):
            u = ch.upper()
            key = u if len(u) == 1 else ch
            if key not in cols:
                cols[key] = len(members)
                members.append([])
            members[cols[key]].append(k)
        table = np.zeros((p.shape[0], len(members) + 1), dtype=np.float64)
        for c, ks in enumerate(members):
            acc = p[:, ks[0]].copy()
            for k in ks[1:]:  # summed in charset order (the same float values whichever DP reads them)
                acc = acc + p[:, k]
            table[:, c] = acc
        self.table = table
        self.columns = cols
        self.length = p.shape[0]
        self._none = len(members)
        self._codes = np.array(sorted(ord(k) for k in cols), dtype=np.int64)
        self._code_cols = np.array([cols[chr(c)] for c in self._codes], dtype=np.int64)

    def column(self, ch: str) -> int:
        return self.columns.get(ch, self._none)

    def prob(self, j: int, ch: str) -> float:
        """Probability of (upper-cased) character ``ch`` at position ``j``."""
        return float(self.table[j, self.column(ch)])

    def columns_of(self, codes: np.ndarray) -> np.ndarray:
        """Columns of an int array of code points (the zero column for unknown ones and for padding)."""
        codes = np.asarray(codes, dtype=np.int64)
        if not len(self._codes):
            return np.full(codes.shape, self._none, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._codes, codes), 0, len(self._codes) - 1)
        return np.where(self._codes[pos] == codes, self._code_cols[pos], self._none)


def _substitution_cost(p_new: float, p_old: float) -> float:
    """max(0, 1 - p_new / p_old * 5); for p_old = 0 its limit: 0 if p_new > 0 else 1."""
    if p_old > 0:
        return max(1.0 - p_new / p_old * WEIGHTED_SUBSTITUTION_FACTOR, 0.0)
    return 0.0 if p_new > 0 else 1.0


def weighted_edit_distance(text: str, word: str, probs: CharProbabilities) -> float:
    """Mask TextSpotter's weighted edit distance from a recognised ``text`` to a lexicon ``word`` (plain Python).

    Both strings are used as given (the rule upper-cases them first); ``probs`` has one row per character of
    ``text``. With ``p_j(c)`` the probability of character ``c`` at position ``j`` of ``text`` and
    ``s_j = p_j(text[j])`` (0-based), the DP ``D[i][j]`` (``i`` characters of ``word``, ``j`` of ``text``) is::

        D[0][j] = j,  D[i][0] = i                               (unit costs on the borders, as in Mask TextSpotter)
        D[i][j] = min(D[i-1][j]   + ins(j-1),                   insert word[i-1] after text[j-1]
                      D[i][j-1]   + s_(j-1),                    delete text[j-1]: its own probability
                      D[i-1][j-1] + sub(i-1, j-1))
        ins(j) = (s_j + s_(j+1)) / 2 if j + 1 < len(text) else s_j          the mean of its neighbours
        sub(i, j) = 0 if word[i] == text[j] else max(0, 1 - p_j(word[i]) / s_j * 5)
                    (when s_j = 0: 0 if p_j(word[i]) > 0 else 1, the limit)

    Returns ``D[len(word)][len(text)]`` (float)."""
    m, n = len(text), len(word)
    if probs.length != m:
        raise ValueError(f"char_probs has {probs.length} rows for a text of {m} characters ({text!r})")
    s = [probs.prob(j, text[j]) for j in range(m)]
    ins = [(s[j] + s[j + 1]) / 2 if j + 1 < m else s[j] for j in range(m)]
    prev = [float(j) for j in range(m + 1)]
    for i in range(1, n + 1):
        w = word[i - 1]
        cur = [float(i)]
        for j in range(1, m + 1):
            sub = 0.0 if w == text[j - 1] else _substitution_cost(probs.prob(j - 1, w), s[j - 1])
            cur.append(min(prev[j] + ins[j - 1], cur[j - 1] + s[j - 1], prev[j - 1] + sub))
        prev = cur
    return prev[m]


# ----------------------------------------------------------------------------------- vectorised search --
class _Group:
    """Distinct lexicon words (upper-cased) searched together: ``pos`` their positions in the index (ascending),
    ``lengths``, ``codes`` (k, Lmax) int64 code points padded with -1; Myers bit-vectors for words <= 64 chars."""

    def __init__(self, pos: np.ndarray, keys: Sequence[str]):
        self.pos = pos
        self.lengths = np.array([len(k) for k in keys], dtype=np.int64)
        self.lmin, self.lmax = int(self.lengths.min()), int(self.lengths.max())
        self.codes = np.full((len(keys), self.lmax), -1, dtype=np.int64)
        for r, k in enumerate(keys):
            self.codes[r, : len(k)] = [ord(c) for c in k]
        self.myers = self.lmax <= _MYERS_BITS
        self.keys = list(keys)
        if self.myers:
            self._weights = _ONE << np.arange(self.lmax, dtype=np.uint64)
            self._high = _ONE << (self.lengths.astype(np.uint64) - _ONE)
            if self.lmin == self.lmax:
                self._high = self._high[0]  # a scalar: cheaper
            self._peq: Dict[int, np.ndarray] = {}
            self._zeros = np.zeros(len(keys), dtype=np.uint64)

    def lower_bound(self, m: int) -> int:
        return max(0, self.lmin - m, m - self.lmax)

    def _eq(self, c: int) -> np.ndarray:
        """Myers' match vector of code point ``c``: bit ``i`` of word ``r`` set when its character ``i`` is ``c``
        (cached per character; absent characters share one zero vector)."""
        v = self._peq.get(c)
        if v is None:
            hit = self.codes == c
            v = (hit * self._weights).sum(axis=1, dtype=np.uint64) if hit.any() else self._zeros
            if len(self._peq) < 4096:
                self._peq[c] = v
        return v

    def distances(self, text: str) -> np.ndarray:
        """(k,) int64 Levenshtein distances from ``text`` (already upper-cased) to the group's words."""
        if not self.myers:
            return np.array([levenshtein(text, k) for k in self.keys], dtype=np.int64)
        n = len(self.pos)
        vp = np.full(n, _ALL_ONES, dtype=np.uint64)
        vn = np.zeros(n, dtype=np.uint64)
        d0 = np.empty(n, dtype=np.uint64)
        hp = np.empty(n, dtype=np.uint64)
        hn = np.empty(n, dtype=np.uint64)
        t = np.empty(n, dtype=np.uint64)
        score = self.lengths.copy()
        high = self._high
        for ch in text:
            eq = self._eq(ord(ch))
            # D0 = (((Eq & VP) + VP) ^ VP) | Eq | VN
            np.bitwise_and(eq, vp, out=t)
            np.add(t, vp, out=t)
            np.bitwise_xor(t, vp, out=t)
            np.bitwise_or(t, eq, out=d0)
            np.bitwise_or(d0, vn, out=d0)
            # HP = VN | ~(D0 | VP); HN = VP & D0
            np.bitwise_or(d0, vp, out=hp)
            np.invert(hp, out=hp)
            np.bitwise_or(hp, vn, out=hp)
            np.bitwise_and(vp, d0, out=hn)
            # the last row moves by +1 / -1
            np.bitwise_and(hp, high, out=t)
            score += t != 0
            np.bitwise_and(hn, high, out=t)
            score -= t != 0
            # shift in the top border (D[0][j] = j: +1 each column)
            np.left_shift(hp, _ONE, out=hp)
            np.bitwise_or(hp, _ONE, out=hp)
            np.left_shift(hn, _ONE, out=hn)
            # VP = HN | ~(D0 | HP); VN = HP & D0
            np.bitwise_or(d0, hp, out=vp)
            np.invert(vp, out=vp)
            np.bitwise_or(vp, hn, out=vp)
            np.bitwise_and(hp, d0, out=vn)
        return score


class _Index:
    """The distinct upper-cased words of a lexicon (first occurrence order) and the groups that search them.

    ``grouping``: ``"auto"`` (one group up to 2048 distinct words, else one per length), ``"flat"``, ``"length"``.
    Words longer than 64 characters go to their own groups, searched with the plain DP."""

    def __init__(self, words: Sequence[str], grouping: str = "auto"):
        first: Dict[str, int] = {}
        for i, w in enumerate(words):
            first.setdefault(w.upper(), i)
        self.keys: List[str] = list(first)
        self.word_of_key = np.fromiter(first.values(), dtype=np.int64, count=len(first))
        key_of = {k: p for p, k in enumerate(self.keys)}
        self.key_of_word = np.array([key_of[w.upper()] for w in words], dtype=np.int64)
        lengths = np.array([len(k) for k in self.keys], dtype=np.int64)
        if grouping == "auto":
            grouping = "flat" if len(self.keys) <= _FLAT_MAX_KEYS else "length"
        if grouping not in ("flat", "length"):
            raise ValueError(f"unknown grouping {grouping!r}")
        short = np.flatnonzero(lengths <= _MYERS_BITS)
        long_ = np.flatnonzero(lengths > _MYERS_BITS)
        buckets: List[np.ndarray] = []
        if grouping == "flat":
            if len(short):
                buckets.append(short)
        else:
            for length in np.unique(lengths[short]):
                buckets.append(short[lengths[short] == length])
        for length in np.unique(lengths[long_]):
            buckets.append(long_[lengths[long_] == length])
        self.groups = [_Group(b, [self.keys[p] for p in b]) for b in buckets]
        # where each key lives, for the weighted rule's gather
        self.group_of = np.empty(len(self.keys), dtype=np.int64)
        self.row_of = np.empty(len(self.keys), dtype=np.int64)
        for g, grp in enumerate(self.groups):
            self.group_of[grp.pos] = g
            self.row_of[grp.pos] = np.arange(len(grp.pos))

    def _ordered(self, m: int) -> List[Tuple[int, _Group]]:
        return sorted(((g.lower_bound(m), g) for g in self.groups), key=lambda t: (t[0], int(t[1].pos[0])))

    def all_distances(self, text: str) -> np.ndarray:
        """(number of keys,) int64: the distance from ``text`` (upper-cased) to every key, no pruning."""
        out = np.empty(len(self.keys), dtype=np.int64)
        for g in self.groups:
            out[g.pos] = g.distances(text)
        return out

    def nearest(self, text: str) -> Tuple[int, int]:
        """(key position, distance) of the nearest key, the first one on ties."""
        best_d, best_p = math.inf, math.inf
        for lb, g in self._ordered(len(text)):
            if lb > best_d:
                break  # groups come in lower-bound order: none further can tie
            if lb == best_d and g.pos[0] > best_p:
                continue  # at best a tie, and later in the lexicon
            d = g.distances(text)
            k = int(np.argmin(d))  # the first minimum: positions are ascending in a group
            if (int(d[k]), int(g.pos[k])) < (best_d, best_p):
                best_d, best_p = int(d[k]), int(g.pos[k])
        return int(best_p), int(best_d)

    def within(self, text: str, margin: int) -> Tuple[np.ndarray, np.ndarray]:
        """Key positions (ascending) and distances of the keys within ``margin`` of the minimum distance."""
        best = math.inf
        pos, dist = [], []
        for lb, g in self._ordered(len(text)):
            if lb > best + margin:
                break
            d = g.distances(text)
            best = min(best, int(d.min()))
            pos.append(g.pos)
            dist.append(d)
        p, d = np.concatenate(pos), np.concatenate(dist)
        keep = d <= best + margin
        p, d = p[keep], d[keep]
        order = np.argsort(p, kind="stable")
        return p[order], d[order]

    def weighted(self, text: str, positions: np.ndarray, probs: CharProbabilities) -> np.ndarray:
        """(len(positions),) float64 weighted distances from ``text`` (upper-cased) to those keys, vectorised
        over the keys; each value equals :func:`weighted_edit_distance` exactly."""
        m = len(text)
        if probs.length != m:
            raise ValueError(f"char_probs has {probs.length} rows for a text of {m} characters ({text!r})")
        k = len(positions)
        out = np.empty(k, dtype=np.float64)
        if k == 0:
            return out
        lengths = np.array([len(self.keys[p]) for p in positions], dtype=np.int64)
        lmax = int(lengths.max())
        codes = np.full((k, lmax), -1, dtype=np.int64)
        for g_id in np.unique(self.group_of[positions]):
            sel = np.flatnonzero(self.group_of[positions] == g_id)
            grp = self.groups[g_id]
            rows = self.row_of[positions[sel]]
            width = min(lmax, grp.codes.shape[1])
            codes[sel, :width] = grp.codes[rows, :width]
        tcodes = np.array([ord(c) for c in text], dtype=np.int64)
        s = probs.table[np.arange(m), probs.columns_of(tcodes)] if m else np.zeros(0)
        ins = np.array([(s[j] + s[j + 1]) / 2 if j + 1 < m else s[j] for j in range(m)], dtype=np.float64)
        if m == 0:
            out[:] = lengths.astype(np.float64)
            return out
        # rows of the DP, one column per key: prev[j] = D[i-1][j] for every key at once
        prev = np.repeat(np.arange(m + 1, dtype=np.float64)[:, None], k, axis=1)
        cur = np.empty_like(prev)
        a, b = np.empty(k), np.empty(k)
        zero_old = (s == 0)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(1, lmax + 1):
                ci = codes[:, i - 1]
                pnew = probs.table[:, probs.columns_of(ci)]  # (m, k): p_j(word[i-1])
                raw = np.maximum(1.0 - pnew / s[:, None] * WEIGHTED_SUBSTITUTION_FACTOR, 0.0)
                sub = np.where(zero_old, np.where(pnew > 0, 0.0, 1.0), raw)
                sub[tcodes[:, None] == ci[None, :]] = 0.0
                cur[0] = float(i)
                for j in range(1, m + 1):
                    np.add(prev[j], ins[j - 1], out=a)
                    np.add(cur[j - 1], s[j - 1], out=b)
                    np.minimum(a, b, out=a)
                    np.add(prev[j - 1], sub[j - 1], out=b)
                    np.minimum(a, b, out=cur[j])
                ends = lengths == i
                out[ends] = cur[m, ends]
                prev, cur = cur, prev
        return out


# ------------------------------------------------------------------------------------------- lexicons --
@dataclass(frozen=True)
class LexiconMatch:
    """The outcome of matching one text: ``index`` into ``Lexicon.words`` of the chosen word, ``word`` (the
    compared form, as in the file), ``submitted`` (its submitted form), ``distance`` (Levenshtein, or the weighted
    distance for the weighted rule), ``plain_distance`` (Levenshtein, always), ``keep`` (distance below the
    rule's ``max_distance``)."""

    query: str
    index: int
    word: str
    submitted: str
    distance: float
    plain_distance: int
    keep: bool


def resolve_max_distance(rule: str, max_distance: Union[float, None, str] = "default") -> Optional[float]:
    """The keep threshold: ``"default"`` -> the rule's (:data:`DEFAULT_MAX_DISTANCE`); ``None`` or ``inf`` -> None
    (always keep); else the number, >= 0 (a match is kept when its distance is below it). ``ValueError`` for a
    negative number, NaN or another string."""
    rule = _check_rule(rule)
    if isinstance(max_distance, str):
        if max_distance != "default":
            raise ValueError(f"max_distance must be a number, None or 'default', got {max_distance!r}")
        return DEFAULT_MAX_DISTANCE[rule]
    if max_distance is None:
        return None
    v = float(max_distance)
    if math.isnan(v) or v < 0:
        raise ValueError(f"max_distance must be >= 0 (or None / inf: always keep), got {max_distance!r}")
    return None if math.isinf(v) else v


def _check_rule(rule: str) -> str:
    r = str(rule).lower()
    if r not in RULES:
        raise ValueError(f"unknown lexicon rule {rule!r}; expected one of {RULES}")
    return r


class Lexicon:
    """A lexicon: ``words`` (the compared forms, in file order, as written) and ``submitted`` (for each word, the
    form that replaces a detection's text: its pair-list original, else the word itself).

    ``source``: a description for tables (``"ch4_test_vocabulary_new.txt + ch4_test_vocabulary_pair_list.txt"``),
    ``files``: the paths read, ``has_pairs``: whether a pair list gave the submitted forms, ``warnings``: counts
    (``duplicates``: words whose upper-cased form occurred earlier; ``pair_conflicts``; ``missing_pairs``;
    ``unused_pairs``: pair-list keys of no word). The search index is built on first use."""

    def __init__(self, words: Sequence[str], submitted: Optional[Sequence[str]] = None, *,
                 pairs: Optional[Mapping[str, str]] = None, source: str = "<memory>", files: Sequence[str] = (),
                 warnings: Optional[Mapping[str, int]] = None):
        words = tuple(str(w) for w in words)
        if not words:
            raise ValueError(f"empty lexicon: {source}")
        for i, w in enumerate(words):
            if not w or "\n" in w or "\r" in w:
                raise ValueError(f"{source}: word #{i + 1} {w!r} is empty or contains a line break")
        if submitted is not None and pairs is not None:
            raise ValueError("give submitted forms or pairs, not both")
        if pairs is not None:
            up = {str(k).upper(): str(v) for k, v in pairs.items()}
            missing = [w for w in words if w.upper() not in up]
            if missing:
                raise ValueError(f"{source}: {len(missing)} word(s) without a pair, e.g. {missing[0]!r}")
            submitted = [up[w.upper()] for w in words]
        self.words: Tuple[str, ...] = words
        self.submitted: Tuple[str, ...] = tuple(str(s) for s in (submitted if submitted is not None else words))
        if len(self.submitted) != len(self.words):
            raise ValueError(f"{source}: {len(self.submitted)} submitted forms for {len(self.words)} words")
        self.has_pairs = pairs is not None or submitted is not None
        self.source = source
        self.files = tuple(os.fspath(f) for f in files)
        w = Counter(dict(warnings or {}))
        w["duplicates"] = len(words) - len({x.upper() for x in words})
        self.warnings = {k: int(w[k]) for k in ("duplicates", "pair_conflicts", "missing_pairs", "unused_pairs")}
        self._index: Optional[_Index] = None
        self._cache: Dict[str, Tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"Lexicon({len(self.words)} words, {self.source})"

    @property
    def description(self) -> str:
        return f"{self.source} ({len(self.words)} words)"

    @property
    def index(self) -> _Index:
        if self._index is None:
            self._index = _Index(self.words)
        return self._index

    def distances(self, text: str) -> np.ndarray:
        """(len(self),) int64: Levenshtein distance from ``text.upper()`` to each word's upper-cased form."""
        idx = self.index
        return idx.all_distances(text.upper())[idx.key_of_word]

    def nearest(self, text: str) -> Tuple[int, int]:
        """(index into ``words``, distance) of the nearest word to ``text`` (upper-cased), the first on ties."""
        q = text.upper()
        hit = self._cache.get(q)
        if hit is None:
            p, d = self.index.nearest(q)
            hit = (int(self.index.word_of_key[p]), d)
            if len(self._cache) < 100_000:
                self._cache[q] = hit
        return hit

    def match(self, text: str, rule: str = DEFAULT_RULE, *, max_distance: Union[float, None, str] = "default",
              char_probs=None, charset: Optional[str] = None) -> LexiconMatch:
        """Match one text under ``rule`` (module docstring). ``char_probs`` (len(text), len(charset)) and
        ``charset`` are needed by the weighted rule only (a :class:`CharProbabilities` may be given instead)."""
        rule = _check_rule(rule)
        thr = resolve_max_distance(rule, max_distance)
        if rule != "weighted":
            i, d = self.nearest(text)
            return LexiconMatch(text, i, self.words[i], self.submitted[i], float(d), d, thr is None or d < thr)
        if char_probs is None:
            raise ValueError(f"rule 'weighted' needs per-character probabilities (text {text!r} has none)")
        probs = char_probs if isinstance(char_probs, CharProbabilities) else CharProbabilities(char_probs, charset)
        q = text.upper()
        if len(q) != len(text):
            raise ValueError(f"text {text!r} changes length when upper-cased: its probabilities cannot be aligned")
        idx = self.index
        pos, plain = idx.within(q, WEIGHTED_SHORTLIST_MARGIN)
        wd = idx.weighted(q, pos, probs)
        k = int(np.argmin(wd))  # first minimum in lexicon order
        i = int(idx.word_of_key[pos[k]])
        d = float(wd[k])
        return LexiconMatch(text, i, self.words[i], self.submitted[i], d, int(plain[k]), thr is None or d < thr)


class PerImageLexicon(Mapping):
    """One :class:`Lexicon` per image (ICDAR 2015 Strong), keyed by image key
    (:func:`~fasttcm.evaluation.text_eval.image_key` under ``protocol``: ``"12"`` for ``voc_img_12.txt``,
    ``img_12``, ``12``); any image id is accepted for lookup. ``source``/``files``/``ignored`` (file names in the
    folder that are not lexicon files) describe where they came from."""

    def __init__(self, lexicons: Mapping[Any, Lexicon], *, protocol: str = "icdar15", source: str = "<memory>",
                 files: Sequence[str] = (), ignored: Sequence[str] = ()):
        self.protocol = te.canonical_protocol(protocol)
        self._lex: Dict[str, Lexicon] = {}
        for k, v in lexicons.items():
            key = te.image_key(k, self.protocol)
            if key in self._lex:
                raise ValueError(f"{source}: two lexicons for image {key!r}")
            if not isinstance(v, Lexicon):
                raise TypeError(f"{source}: the lexicon of image {k!r} is a {type(v).__name__}, not a Lexicon")
            self._lex[key] = v
        if not self._lex:
            raise ValueError(f"no per-image lexicon in {source}")
        self.source = source
        self.files = tuple(os.fspath(f) for f in files)
        self.ignored = tuple(ignored)

    def key(self, image_id) -> str:
        return te.image_key(image_id, self.protocol)

    def __getitem__(self, image_id) -> Lexicon:
        return self._lex[self.key(image_id)]

    def __contains__(self, image_id) -> bool:
        return self.key(image_id) in self._lex

    def __iter__(self):
        return iter(self._lex)

    def __len__(self) -> int:
        return len(self._lex)

    def missing(self, image_ids: Iterable) -> List[str]:
        """Keys of those images that have no lexicon."""
        return [self.key(i) for i in image_ids if self.key(i) not in self._lex]

    @property
    def description(self) -> str:
        n = sum(len(v) for v in self._lex.values())
        return f"{self.source} ({len(self._lex)} images, {n / len(self._lex):.1f} words per image)"

    @property
    def warnings(self) -> Dict[str, int]:
        out = Counter()
        for v in self._lex.values():
            out.update(v.warnings)
        out["ignored_files"] = len(self.ignored)
        return dict(out)

    def __repr__(self) -> str:
        return f"PerImageLexicon({len(self._lex)} images, {self.source})"


LexiconLike = Union[Lexicon, PerImageLexicon]


# ---------------------------------------------------------------------------------------------- files --
def _read_lines(path) -> List[str]:
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 ({e.reason} at byte {e.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_word_list(path) -> List[Tuple[str, int]]:
    """``[(word, 1-based line), ...]`` of a word list (module docstring). ``ValueError`` naming ``file:line`` for
    a line with white space inside its word; an empty list is returned as is (the loaders reject it)."""
    path = os.fspath(path)
    out = []
    for i, line in enumerate(_read_lines(path), start=1):
        w = line.strip()
        if not w:
            continue
        if _WS.search(w):
            raise ValueError(f"{path}:{i}: a word list has one word per line, got {_short(line)} (is this a pair "
                             "list? give it as the pair list)")
        out.append((w, i))
    return out


def read_pair_list(path) -> Tuple[Dict[str, Tuple[str, int]], Dict[str, int], List[str]]:
    """Read a pair list: ``({KEY (upper-cased): (original, 1-based line)}, counts, messages)``; ``counts`` has
    ``pair_conflicts`` (a later line with the same key and another original: it wins) and ``duplicates``
    (same key, same original). ``ValueError`` naming ``file:line`` for a line without two fields."""
    path = os.fspath(path)
    pairs: Dict[str, Tuple[str, int]] = {}
    counts = Counter()
    messages: List[str] = []
    for i, line in enumerate(_read_lines(path), start=1):
        s = line.strip()
        if not s:
            continue
        m = _PAIR.fullmatch(s)
        if m is None:
            raise ValueError(f"{path}:{i}: expected 'WORD ORIGINAL' (the word as compared, a space, the form that "
                             f"is submitted), got {_short(line)}")
        key, original = m.group(1).upper(), m.group(2)
        old = pairs.get(key)
        if old is not None:
            if old[0] != original:
                counts["pair_conflicts"] += 1
                if len(messages) < _MAX_MESSAGES:
                    messages.append(f"{path}:{i}: {key!r} -> {original!r} replaces {old[0]!r} of line {old[1]}")
            else:
                counts["duplicates"] += 1
        pairs[key] = (original, i)
    return pairs, dict(counts), messages


def _short(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def load_lexicon(words_path, pairs_path=None, *, missing_pair: str = "error", name: Optional[str] = None) -> Lexicon:
    """Load a lexicon: a word list, and optionally its pair list (module docstring for both formats).

    ``missing_pair``: ``"error"`` (default: a word without a pair raises ``ValueError`` naming its ``file:line``)
    or ``"warn"`` (the word itself is submitted; counted in ``warnings["missing_pairs"]``). ``name`` prefixes the
    description. ``FileNotFoundError`` when a file does not exist; ``ValueError`` for an empty word list."""
    if missing_pair not in ("error", "warn"):
        raise ValueError(f"missing_pair must be 'error' or 'warn', got {missing_pair!r}")
    words_path = os.fspath(words_path)
    for p in (words_path, pairs_path):
        if p is not None and not os.path.isfile(p):
            raise FileNotFoundError(f"lexicon file not found: {os.fspath(p)}")
    entries = read_word_list(words_path)
    if not entries:
        raise ValueError(f"empty lexicon: {words_path} has no word")
    words = [w for w, _ in entries]
    counts = Counter()
    files = [words_path]
    source = os.path.basename(words_path)
    if pairs_path is None:
        submitted = None
    else:
        pairs_path = os.fspath(pairs_path)
        files.append(pairs_path)
        source += f" + {os.path.basename(pairs_path)}"
        pairs, pc, messages = read_pair_list(pairs_path)
        counts["pair_conflicts"] = pc.get("pair_conflicts", 0)
        for msg in messages:
            logger.warning("lexicon pair list: %s", msg)
        submitted = []
        used = set()
        for w, line in entries:
            hit = pairs.get(w.upper())
            if hit is None:
                if missing_pair == "error":
                    raise ValueError(f"{words_path}:{line}: word {w!r} has no pair in {pairs_path} (every word of "
                                     "a rewritten lexicon needs its original form)")
                counts["missing_pairs"] += 1
                submitted.append(w)
            else:
                used.add(w.upper())
                submitted.append(hit[0])
        counts["unused_pairs"] = len(set(pairs) - used)
        if counts["missing_pairs"]:
            logger.warning("lexicon %s: %d word(s) without a pair are submitted as they are", source,
                           counts["missing_pairs"])
    if name:
        source = f"{name}: {source}"
    return Lexicon(words, submitted, source=source, files=files, warnings=counts)


_STRONG = re.compile(r"(new_voc|pair_voc|voc)_img_(.+)\.txt")


def load_strong_lexicons(folder, *, protocol: str = "icdar15", missing_pair: str = "error",
                         name: Optional[str] = "strong") -> PerImageLexicon:
    """Load per-image lexicons from a folder: the rewritten form ``new_voc_img_<id>.txt`` + ``pair_voc_img_<id>.txt``
    when the folder has any ``new_voc_img_*.txt`` (each then needs its pair list: ``ValueError`` naming the
    missing file), else the plain ``voc_img_<id>.txt``. Other files are ignored and listed in ``.ignored``
    (logged). ``ValueError`` when the folder has none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"strong lexicon folder not found: {folder}")
    found: Dict[str, Dict[str, str]] = {"new_voc": {}, "pair_voc": {}, "voc": {}}
    ignored = []
    for fn in sorted(os.listdir(folder)):
        full = os.path.join(folder, fn)
        m = _STRONG.fullmatch(fn)
        if m is None or not os.path.isfile(full):
            ignored.append(fn)
            continue
        kind, key = m.group(1), te.image_key(m.group(2), protocol)
        if key in found[kind]:
            raise ValueError(f"{full} and {found[kind][key]} are both the {kind}_img file of image {key!r}")
        found[kind][key] = full
    new = bool(found["new_voc"])
    if new:
        words_files, pair_files = found["new_voc"], found["pair_voc"]
        for key, path in words_files.items():
            if key not in pair_files:
                raise ValueError(f"{path} has no pair list: expected {os.path.join(folder, f'pair_voc_img_{key}.txt')}")
        ignored += [os.path.basename(p) for k, p in pair_files.items() if k not in words_files]
        ignored += [os.path.basename(p) for p in found["voc"].values()]
        form = "new_voc_img_<id>.txt + pair_voc_img_<id>.txt"
    else:
        words_files, pair_files = found["voc"], {}
        ignored += [os.path.basename(p) for p in found["pair_voc"].values()]
        form = "voc_img_<id>.txt"
    if not words_files:
        raise ValueError(f"no per-image lexicon (voc_img_<id>.txt or new_voc_img_<id>.txt) in {folder}")
    if ignored:
        logger.warning("strong lexicons in %s: %d file(s) ignored (not %s): %s", folder, len(ignored), form,
                       ", ".join(sorted(ignored)[:10]))
    lexicons = {}
    files = []
    for key, path in words_files.items():
        lexicons[key] = load_lexicon(path, pair_files.get(key), missing_pair=missing_pair)
        files += list(lexicons[key].files)
    source = f"{folder}/ ({form})"
    if name:
        source = f"{name}: {source}"
    return PerImageLexicon(lexicons, protocol=protocol, source=source, files=files, ignored=sorted(ignored))


#: file names of the common kits, per lexicon: (rewritten words, pair list, plain words)
KIT_FILES = {
    "generic": ("GenericVocabulary_new.txt", "GenericVocabulary_pair_list.txt", "GenericVocabulary.txt"),
    "weak": ("ch4_test_vocabulary_new.txt", "ch4_test_vocabulary_pair_list.txt", "ch4_test_vocabulary.txt"),
    "full": ("weak_voc_new.txt", "weak_voc_pair_list.txt", "weak_voc.txt"),
}
#: folders searched (in order) for the Strong lexicons inside a dataset's lexicon folder
STRONG_FOLDERS = ("new_strong_lexicon", "strong_lexicon", "strong", ".")
#: dataset sub-folders of a kit's lexicon folder (``lexicons/ic15/...``), tried in order
DATASET_FOLDERS = {
    "icdar15": ("ic15", "icdar2015", "icdar15", "IC15", "ICDAR2015"),
    "totaltext": ("totaltext", "total_text", "Total-Text", "TotalText"),
    "ctw1500": ("ctw1500", "CTW1500", "ctw"),
}


def _dataset_dir(lexicon_dir: str, protocol: str) -> str:
    for sub in DATASET_FOLDERS[protocol]:
        d = os.path.join(lexicon_dir, sub)
        if os.path.isdir(d):
            return d
    return lexicon_dir


def find_lexicon_files(lexicon_dir, protocol: str) -> Dict[str, Tuple[str, Optional[str]]]:
    """The lexicon files a kit folder holds for ``protocol``: ``{name: (words or folder, pair list or None)}``.

    ``lexicon_dir`` is the dataset's folder (``lexicons/ic15``) or its parent (``lexicons``, then the first of
    :data:`DATASET_FOLDERS` that exists is used). Per lexicon (:data:`KIT_FILES`) the rewritten word list with
    its pair list is preferred, else the plain word list; a rewritten list without its pair list raises
    ``ValueError`` (its stripped words are not what the ground truth has). Strong (ICDAR 2015): the first of
    :data:`STRONG_FOLDERS` holding ``new_voc_img_*.txt`` or ``voc_img_*.txt``, as ``(folder, None)``.
    Lexicons not found are left out."""
    protocol = te.canonical_protocol(protocol)
    lexicon_dir = os.fspath(lexicon_dir)
    if not os.path.isdir(lexicon_dir):
        raise FileNotFoundError(f"lexicon folder not found: {lexicon_dir}")
    root = _dataset_dir(lexicon_dir, protocol)
    out: Dict[str, Tuple[str, Optional[str]]] = {}
    for name in DATASET_LEXICONS[protocol]:
        if name == "strong":
            for sub in STRONG_FOLDERS:
                d = os.path.normpath(os.path.join(root, sub))
                if os.path.isdir(d) and any(_STRONG.fullmatch(f) and not f.startswith("pair_") for f in os.listdir(d)):
                    out[name] = (d, None)
                    break
            continue
        new, pairs, plain = (os.path.join(root, f) for f in KIT_FILES[name])
        if os.path.isfile(new):
            if not os.path.isfile(pairs):
                raise ValueError(f"{new} needs its pair list {pairs} (or give the plain word list explicitly)")
            out[name] = (new, pairs)
        elif os.path.isfile(plain):
            out[name] = (plain, None)
    return out


def load_lexicon_dir(lexicon_dir, protocol: str, names: Optional[Sequence[str]] = None, *,
                     missing_pair: str = "error") -> Dict[str, LexiconLike]:
    """Load the lexicons of a kit folder (:func:`find_lexicon_files`) in table order. ``names``: the lexicons
    required (``FileNotFoundError`` naming the files searched when one is absent); default: those found."""
    protocol = te.canonical_protocol(protocol)
    files = find_lexicon_files(lexicon_dir, protocol)
    wanted = list(DATASET_LEXICONS[protocol]) if names is None else [n.lower() for n in names]
    out: Dict[str, LexiconLike] = {}
    for name in wanted:
        if name not in DATASET_LEXICONS[protocol]:
            raise ValueError(f"protocol {protocol} has no {name!r} lexicon; it has {DATASET_LEXICONS[protocol]}")
        if name not in files:
            if names is None:
                continue
            root = _dataset_dir(os.fspath(lexicon_dir), protocol)
            what = (f"{'/ or '.join(STRONG_FOLDERS)}/ with voc_img_<id>.txt files" if name == "strong"
                    else " or ".join(KIT_FILES[name][::2]))
            raise FileNotFoundError(f"no {name} lexicon in {root} (looked for {what})")
        words, pairs = files[name]
        if name == "strong":
            out[name] = load_strong_lexicons(words, protocol=protocol, missing_pair=missing_pair)
        else:
            out[name] = load_lexicon(words, pairs, missing_pair=missing_pair, name=name)
    return out


def parse_lexicon_arg(value) -> Tuple[str, Optional[str]]:
    """``"WORDS"`` or ``"WORDS<sep>PAIRS"`` (``<sep>`` = ``os.pathsep``: ``:`` on POSIX, ``;`` on Windows, as in
    PATH), or a ``(words, pairs)`` pair, -> ``(words, pairs or None)``."""
    if isinstance(value, (tuple, list)):
        if len(value) not in (1, 2):
            raise ValueError(f"a lexicon is (words[, pairs]), got {value!r}")
        return os.fspath(value[0]), (os.fspath(value[1]) if len(value) == 2 and value[1] is not None else None)
    s = os.fspath(value)
    if os.pathsep in s and not os.path.exists(s):
        words, pairs = s.split(os.pathsep, 1)
        return words, pairs
    return s, None


def load_lexicons(protocol: str, lexicon_dir=None, *, strong=None, weak=None, generic=None, full=None,
                  missing_pair: str = "error") -> Dict[str, LexiconLike]:
    """The lexicons of one evaluation, in table order: those of ``lexicon_dir`` (a kit folder, may be None), each
    overridden by an explicit argument: ``strong`` a folder (:func:`load_strong_lexicons`), ``weak`` / ``generic``
    / ``full`` a word list or ``words<os.pathsep>pairs`` or a ``(words, pairs)`` pair (:func:`parse_lexicon_arg`).
    ``ValueError`` for a lexicon the protocol does not report (``full`` for ICDAR 2015, ``strong`` for Total-Text)."""
    protocol = te.canonical_protocol(protocol)
    explicit = {k: v for k, v in (("strong", strong), ("weak", weak), ("generic", generic), ("full", full))
                if v is not None}
    for k in explicit:
        if k not in DATASET_LEXICONS[protocol]:
            raise ValueError(f"protocol {protocol} has no {k!r} lexicon; it has {DATASET_LEXICONS[protocol]}")
    found: Dict[str, LexiconLike] = {}
    if lexicon_dir is not None:
        present = find_lexicon_files(lexicon_dir, protocol)
        found.update(load_lexicon_dir(lexicon_dir, protocol, [n for n in present if n not in explicit],
                                      missing_pair=missing_pair))
    for name, v in explicit.items():
        if name == "strong":
            found[name] = load_strong_lexicons(v, protocol=protocol, missing_pair=missing_pair)
        else:
            words, pairs = parse_lexicon_arg(v)
            found[name] = load_lexicon(words, pairs, missing_pair=missing_pair, name=name)
    return {n: found[n] for n in DATASET_LEXICONS[protocol] if n in found}


# ------------------------------------------------------------------------------------------- applying --
@dataclass
class LexiconResult:
    """What :func:`apply_lexicon` returns.

    ``detections``: ``{image id (as given): [word, ...]}``, every input image (an empty list when nothing is
    left), surviving words in input order, of the input's kind, ``text`` replaced by the matched word's submitted
    form. ``counts``: ``total`` (input words), ``below_score`` (removed by ``score_threshold`` before matching),
    ``kept`` (matched, text unchanged: string equality), ``replaced`` (matched, text changed), ``dropped``
    (nearest word too far under the rule; or the image has no lexicon and ``on_missing="drop"``),
    ``unmatched`` (``on_missing="keep"``: words of images without a lexicon, left as they are), ``images``,
    ``images_without_lexicon``; ``total = below_score + kept + replaced + dropped + unmatched``.
    ``per_image``: ``{image id: {same word counts}}``. ``matches`` (``details=True``): per image, per input word,
    ``{"text", "word", "submitted", "distance", "plain_distance", "action"}`` with action ``kept`` / ``replaced``
    / ``dropped`` / ``below_score`` / ``no_lexicon``."""

    detections: Dict[Any, List[Any]]
    counts: Dict[str, int]
    per_image: Dict[Any, Dict[str, int]]
    images_without_lexicon: List[str]
    rule: str
    max_distance: Optional[float]
    score_threshold: Optional[float]
    lexicon: str
    files: Tuple[str, ...]
    on_missing: str
    matches: Optional[Dict[Any, List[dict]]] = None
    messages: List[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-serializable description for a result table: rule, threshold, lexicon, files, counts."""
        return {
            "rule": self.rule,
            "max_distance": self.max_distance,
            "score_threshold": self.score_threshold,
            "lexicon": self.lexicon,
            "files": list(self.files) if len(self.files) <= 10 else
            [f"{len(self.files)} files, e.g. {self.files[0]}"],
            "on_missing": self.on_missing,
            "counts": dict(self.counts),
            "images_without_lexicon": list(self.images_without_lexicon),
        }


_WORD_COUNTS = ("total", "below_score", "kept", "replaced", "dropped", "unmatched")


def _get(word, name: str, tuple_index: Optional[int]):
    if isinstance(word, Mapping):
        return word.get(name)
    if isinstance(word, tuple):
        if tuple_index is not None and len(word) > tuple_index:
            return word[tuple_index]
        return None
    return getattr(word, name, None)


def _with_text(word, text: str):
    if isinstance(word, Mapping):
        out = dict(word)
        out["text"] = text
        return out
    if isinstance(word, tuple):
        return word[:1] + (text,) + word[2:]
    if dataclasses.is_dataclass(word) and not isinstance(word, type):
        return dataclasses.replace(word, text=text)
    out = copy.copy(word)
    out.text = text
    return out


def apply_lexicon(dets: Mapping[Any, Sequence[Any]], lexicon: Union[LexiconLike, Mapping[Any, Lexicon]],
                  rule: str = DEFAULT_RULE, *, max_distance: Union[float, None, str] = "default",
                  charset: Optional[str] = None, score_threshold: Optional[float] = None, on_missing: str = "error",
                  protocol: str = "icdar15", details: bool = False) -> LexiconResult:
    """Match every detection's text against a lexicon; return the detections a lexicon submission holds.

    Args:
        dets: ``{image id: [word, ...]}`` (word kinds: module docstring; ``text`` None counts as ``""``).
        lexicon: one :class:`Lexicon` for every image (Weak, Generic, Full), or per image: a
            :class:`PerImageLexicon` or a mapping ``image id -> Lexicon`` (keyed by ``protocol``'s image keys).
        rule: ``"adelaidet"``, ``"replace"`` or ``"weighted"``; ``max_distance``: see :func:`resolve_max_distance`.
        charset: the columns of the words' ``char_probs`` (weighted rule only).
        score_threshold: when given, words with ``score`` below it are removed first (``below_score``); a word
            without a score then raises ``ValueError``.
        on_missing: an image without its per-image lexicon: ``"error"`` (``ValueError`` naming the image and the
            lexicon), ``"drop"`` (its words are dropped) or ``"keep"`` (its words are left unchanged, counted as
            ``unmatched``); both of the latter log a warning and list the image in ``images_without_lexicon``.
        details: also return the per-word ``matches``.

    Feeding ``result.detections`` to :func:`fasttcm.evaluation.text_eval.evaluate` gives the lexicon's row.
    ``ValueError`` for the weighted rule when a word has no ``char_probs``, naming the image and the word."""
    rule = _check_rule(rule)
    thr = resolve_max_distance(rule, max_distance)
    if on_missing not in ("error", "drop", "keep"):
        raise ValueError(f"on_missing must be 'error', 'drop' or 'keep', got {on_missing!r}")
    if isinstance(lexicon, Lexicon):
        per_image, single = None, lexicon
    elif isinstance(lexicon, PerImageLexicon):
        per_image, single = lexicon, None
    elif isinstance(lexicon, Mapping):
        per_image, single = PerImageLexicon(lexicon, protocol=protocol), None
    else:
        raise TypeError(f"lexicon must be a Lexicon, a PerImageLexicon or a mapping image id -> Lexicon, "
                        f"got {type(lexicon).__name__}")
    if score_threshold is not None:
        score_threshold = float(score_threshold)
    if rule == "weighted" and charset is None:
        raise ValueError("rule 'weighted' needs the charset of the words' char_probs")
    out: Dict[Any, List[Any]] = {}
    counts = Counter({k: 0 for k in _WORD_COUNTS})
    per_img: Dict[Any, Dict[str, int]] = {}
    without: List[str] = []
    matches: Optional[Dict[Any, List[dict]]] = {} if details else None
    messages: List[str] = []
    for image_id, words in dets.items():
        c = Counter({k: 0 for k in _WORD_COUNTS})
        kept_words: List[Any] = []
        log: List[dict] = []
        lex = single
        if per_image is not None:
            lex = per_image.get(image_id)
            if lex is None:
                key = per_image.key(image_id)
                if on_missing == "error":
                    raise ValueError(f"image {image_id!r} (key {key!r}) has no lexicon in {per_image.source}")
                without.append(key)
                msg = (f"image {image_id!r} has no lexicon in {per_image.source}: its "
                       f"{len(words)} word(s) are {'dropped' if on_missing == 'drop' else 'left unchanged'}")
                if len(messages) < _MAX_MESSAGES:
                    messages.append(msg)
                    logger.warning(msg)
        for n, w in enumerate(words):
            c["total"] += 1
            text = _get(w, "text", 1)
            text = "" if text is None else str(text)
            if score_threshold is not None:
                score = _get(w, "score", 2)
                if score is None:
                    raise ValueError(f"image {image_id!r}, word #{n}: no score, and a score threshold is set")
                if float(score) < score_threshold:
                    c["below_score"] += 1
                    if details:
                        log.append({"text": text, "action": "below_score"})
                    continue
            if lex is None:
                action = "dropped" if on_missing == "drop" else "unmatched"
                c[action] += 1
                if action == "unmatched":
                    kept_words.append(w)
                if details:
                    log.append({"text": text, "action": "no_lexicon"})
                continue
            probs = None
            if rule == "weighted":
                probs = _get(w, "char_probs", None)
                if probs is None:
                    raise ValueError(f"image {image_id!r}, word #{n} ({text!r}): rule 'weighted' needs its "
                                     "char_probs")
                try:
                    probs = CharProbabilities(probs, charset)
                except ValueError as e:
                    raise ValueError(f"image {image_id!r}, word #{n} ({text!r}): {e}") from None
            try:
                mt = lex.match(text, rule, max_distance=thr, char_probs=probs, charset=charset)
            except ValueError as e:
                raise ValueError(f"image {image_id!r}, word #{n}: {e}") from None
            if not mt.keep:
                action = "dropped"
            elif mt.submitted == text:
                action = "kept"
            else:
                action = "replaced"
            c[action] += 1
            if action != "dropped":
                kept_words.append(w if action == "kept" else _with_text(w, mt.submitted))
            if details:
                log.append({"text": text, "word": mt.word, "submitted": mt.submitted, "distance": mt.distance,
                            "plain_distance": mt.plain_distance, "action": action})
        out[image_id] = kept_words
        per_img[image_id] = dict(c)
        counts.update(c)
        if details:
            matches[image_id] = log
    counts = {k: int(counts[k]) for k in _WORD_COUNTS}
    counts["images"] = len(out)
    counts["images_without_lexicon"] = len(without)
    src = lexicon if isinstance(lexicon, (Lexicon, PerImageLexicon)) else per_image
    return LexiconResult(out, counts, per_img, without, rule, thr, score_threshold, src.description,
                         tuple(src.files), on_missing, matches, messages)


def _survivors(words: Sequence[Any], score_threshold: float, image_id) -> List[bool]:
    out = []
    for n, w in enumerate(words):
        s = _get(w, "score", 2)
        if s is None:
            raise ValueError(f"image {image_id!r}, word #{n}: no score, and a score threshold is set")
        out.append(float(s) >= score_threshold)
    return out


# ------------------------------------------------------------------------------------- the whole row --
_TASKS = (("e2e", False), ("word_spotting", True))


def evaluate_spotting(gt, det, protocol: str, lexicons: Optional[Mapping[str, Union[LexiconLike, Mapping]]] = None,
                      *, rule: str = DEFAULT_RULE, max_distance: Union[float, None, str] = "default",
                      charset: Optional[str] = None, score_threshold: Optional[float] = None,
                      on_missing: str = "error", return_detections: bool = False) -> dict:
    """Detection, end to end and word spotting, with no lexicon and with each of ``lexicons``: the row papers
    print. ``gt`` / ``det`` as :func:`~fasttcm.evaluation.text_eval.evaluate` takes them (read once).

    Returns ``{"protocol", "rule", "max_distance", "score_threshold", "det_only": {P, R, H, counts},
    "rows": {"none" | lexicon name: {"e2e": {...}, "word_spotting": {...}, "lexicon": summary or None}},
    "warnings": the no-lexicon evaluation's warnings}`` (rates in [0, 1]). End to end and word spotting differ only
    in ``word_spotting`` (the dictionary rule for GT words); each lexicon is applied once and scored both ways.
    ``return_detections``: also ``"detections": {lexicon name: the detections after matching}`` (to write the
    lexicon's submission files).
    """
    protocol = te.canonical_protocol(protocol)
    lexicons = dict(lexicons or {})
    g = te.as_text_files(gt, protocol, "gt")
    # in-memory detections stay as given (their scores and character probabilities are needed); files are read once
    det_map = det if isinstance(det, Mapping) else te.as_text_files(det, protocol, "det").items
    base = det_map
    if score_threshold is not None:
        base = {k: [w for w, keep in zip(ws, _survivors(ws, score_threshold, k)) if keep] for k, ws in base.items()}
    variants: Dict[str, Tuple[Mapping, Optional[dict]]] = {"none": (base, None)}
    for name, lex in lexicons.items():
        res = apply_lexicon(det_map, lex, rule, max_distance=max_distance, charset=charset,
                            score_threshold=score_threshold, on_missing=on_missing, protocol=protocol)
        variants[name] = (res.detections, res.summary())
    out: dict = {"protocol": protocol, "rule": rule if lexicons else None,
                 "max_distance": resolve_max_distance(rule, max_distance) if lexicons else None,
                 "score_threshold": score_threshold, "rows": {}}
    if return_detections:
        out["detections"] = {name: dets for name, (dets, _) in variants.items() if name != "none"}
    for name, (dets, summary) in variants.items():
        row: dict = {"lexicon": summary}
        for task, ws in _TASKS:
            r = te.evaluate(g, dets, protocol, ws)
            row[task] = r["e2e"]
            if name == "none" and not ws:
                out["det_only"], out["warnings"] = r["det_only"], r["warnings"]
                out["num_images"], out["sources"] = r["num_images"], r["sources"]
        out["rows"][name] = row
    return out


def format_spotting_table(result: dict, conventional_word_spotting: Optional[bool] = None) -> str:
    """:func:`evaluate_spotting`'s result as one table (percent), naming the protocol, the matching rule, the
    lexicon files and the score threshold. ``conventional_word_spotting`` marks the column a dataset is usually
    reported with (Total-Text: word spotting; ICDAR 2015 and CTW1500: end to end)."""
    p = result["protocol"]
    if conventional_word_spotting is None:
        conventional_word_spotting = p == "totaltext"
    thr = result.get("score_threshold")
    lines = [f"Text spotting evaluation, protocol {p}: {te.describe_protocol(p)}; score threshold "
             f"{'as submitted' if thr is None else f'>= {thr:g}'}"]
    lex = [(n, r["lexicon"]) for n, r in result["rows"].items() if r["lexicon"]]
    if lex:
        md = result.get("max_distance")
        lines.append(f"  lexicon rule {result['rule']} (keep when distance < {md:g})" if md is not None else
                     f"  lexicon rule {result['rule']} (always replace by the nearest word)")
        for n, s in lex:
            lines.append(f"  {n}: {', '.join(s['files'])}")
    mark = {"e2e": "" if conventional_word_spotting else " *", "word_spotting": " *" if conventional_word_spotting
            else ""}
    head = "| task | lexicon | precision % | recall % | hmean % | care GT | care det | matched | replaced | dropped |"
    lines += [head, "|" + "---|" * 10]

    def row(task, name, r, s):
        c = (s or {}).get("counts", {})
        return (f"| {task} | {name} | {100 * r['precision']:.2f} | {100 * r['recall']:.2f} | {100 * r['hmean']:.2f} "
                f"| {r['care_gt']} | {r['care_det']} | {r['matched']} | {c.get('replaced', '')} | "
                f"{c.get('dropped', '')} |")

    lines.append(row("detection only", "-", result["det_only"], None))
    for task, label in (("e2e", "end to end"), ("word_spotting", "word spotting")):
        for name, r in result["rows"].items():
            lines.append(row(label + mark[task], name, r[task], r["lexicon"]))
    lines.append("  * the column this dataset is conventionally reported with")
    lines += te.warning_lines({"warnings": result.get("warnings", {})}) if result.get("warnings") else []
    return "\n".join(lines)
