#!/usr/bin/env python
"""Time lexicon matching (``fasttcm.evaluation.lexicon``) against a plain Python DP measured in the same run.

Data (seeded, made in memory): a synthetic lexicon of --words distinct word-like strings (syllables, a few digits
and apostrophes; 1-20 characters, about 10 on average; 90 000 words is the size of ICDAR 2015's Generic
lexicon) and --queries distinct query texts: 70 % lexicon words with 0-3 random edits, 30 % new syllable
strings. For the weighted rule each query gets per-character probabilities over a 37-character charset (A-Z,
0-9, apostrophe), its own character most likely.

Timed (wall clock, index build excluded and printed apart; a fresh lexicon per rule, so no rule reuses another's
caches):
* ``adelaidet`` / ``replace``: the nearest word by Levenshtein distance, all queries;
* ``weighted``: the shortlist (distance <= minimum + 2) and the weighted distance over it, all queries;
* the plain DP: :func:`fasttcm.evaluation.lexicon.levenshtein` over the whole lexicon for --plain-sample
  queries (and, for ``weighted``, :func:`~fasttcm.evaluation.lexicon.weighted_edit_distance` over the shortlist
  found from those plain distances), ms per query extrapolated from that sample.

Checked: on the sample queries the vectorised matches (word index and distance, all three rules) equal the plain
DP's (first word in lexicon order on ties); on every query the returned distance equals the plain DP of the
query and the returned word.

Example:  python tools/benchmark_lexicon.py            (targets: <= 20 ms adelaidet/replace, <= 50 ms weighted)
"""
import argparse
import random
import sys
import time

import numpy as np

CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'"
_ONSETS = ["", "B", "C", "D", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "V", "W", "Y", "Z",
           "BR", "CH", "CL", "DR", "FL", "GR", "PL", "PR", "SH", "ST", "TH", "TR"]
_VOWELS = ["A", "E", "I", "O", "U", "AI", "EA", "EE", "OO", "OU", "Y"]
_CODAS = ["", "", "N", "R", "S", "T", "L", "M", "D", "CK", "NG", "RS", "ST"]


def _syllable_word(rng: random.Random) -> str:
    w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(rng.choice(
        (1, 1, 2, 2, 2, 3, 3, 4))))
    r = rng.random()
    if r < 0.03:
        w = str(rng.randint(0, 9999))
    elif r < 0.06:
        w += "'S"
    elif r < 0.08:
        w += str(rng.randint(0, 99))
    return w[:20] or "A"


def make_lexicon(n: int, seed: int):
    rng = random.Random(seed)
    seen, words = set(), []
    while len(words) < n:
        w = _syllable_word(rng)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def make_queries(words, n: int, seed: int):
    rng = random.Random(seed + 1)
    alphabet = CHARSET[:-1]
    seen, out = set(), []
    while len(out) < n:
        if rng.random() < 0.7:
            w = list(rng.choice(words))
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                op, p = rng.randrange(3), rng.randrange(len(w) + 1)
                if op == 0:
                    w.insert(p, rng.choice(alphabet))
                elif op == 1 and len(w) > 1 and p < len(w):
                    del w[p]
                elif p < len(w):
                    w[p] = rng.choice(alphabet)
            q = "".join(w)
        else:
            q = _syllable_word(rng)
        if q and q not in seen:
            seen.add(q)
            out.append(q)
    return out


def make_probs(q: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(len(CHARSET), 0.2), size=len(q)) * rng.uniform(0.01, 0.6, (len(q), 1))
    for j, ch in enumerate(q):
        k = CHARSET.find(ch)
        p[j, k] += 1.0 - p[j].sum()
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=90000, help="lexicon size (default 90000)")
    ap.add_argument("--queries", type=int, default=1000, help="number of query texts (default 1000)")
    ap.add_argument("--plain-sample", type=int, default=4,
                    help="queries timed and checked with the plain DP over the whole lexicon (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from fasttcm.evaluation.lexicon import (CharProbabilities, Lexicon, WEIGHTED_SHORTLIST_MARGIN, levenshtein,
                                            weighted_edit_distance)

    words = make_lexicon(args.words, args.seed)
    queries = make_queries(words, args.queries, args.seed)
    probs = [CharProbabilities(make_probs(q, args.seed * 100003 + i), CHARSET) for i, q in enumerate(queries)]
    sample = list(range(0, len(queries), max(1, len(queries) // max(1, args.plain_sample))))[: args.plain_sample]
    print(f"lexicon: {len(words)} words (mean length {np.mean([len(w) for w in words]):.1f}), {len(queries)} "
          f"queries (mean length {np.mean([len(q) for q in queries]):.1f}); plain DP on {len(sample)} of them")

    vec_ms, results = {}, {}
    for rule in ("adelaidet", "replace", "weighted"):
        lex = Lexicon(words, source="synthetic")
        t0 = time.perf_counter()
        lex.index
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        if rule == "weighted":
            res = [lex.match(q, rule, char_probs=p) for q, p in zip(queries, probs)]
        else:
            res = [lex.match(q, rule) for q in queries]
        vec_ms[rule] = (time.perf_counter() - t0) / len(queries) * 1e3
        results[rule] = res
        print(f"  {rule:9s} vectorised: {vec_ms[rule]:8.2f} ms/query (index built in {build * 1e3:.0f} ms)")

    same = True
    # every query: the reported distance is the plain DP's for the chosen word
    for rule in ("adelaidet", "replace"):
        for q, m in zip(queries, results[rule]):
            if levenshtein(q.upper(), words[m.index].upper()) != m.plain_distance or m.distance != m.plain_distance:
                same = False
    for q, p, m in zip(queries, probs, results["weighted"]):
        if weighted_edit_distance(q.upper(), words[m.index].upper(), p) != m.distance:
            same = False

    # the sample: whole-lexicon plain DP
    t_lev = t_w = 0.0
    keys = [w.upper() for w in words]
    for i in sample:
        q = queries[i].upper()
        t0 = time.perf_counter()
        d = [levenshtein(q, k) for k in keys]
        best = min(range(len(d)), key=lambda j: (d[j], j))
        t_lev += time.perf_counter() - t0
        for rule in ("adelaidet", "replace"):
            m = results[rule][i]
            if (m.index, m.plain_distance) != (best, d[best]):
                same = False
                print(f"  MISMATCH {rule} {queries[i]!r}: vectorised {m.index}/{m.plain_distance}, plain "
                      f"{best}/{d[best]}")
        t0 = time.perf_counter()
        short = [j for j in range(len(d)) if d[j] <= d[best] + WEIGHTED_SHORTLIST_MARGIN]
        wd = [weighted_edit_distance(q, keys[j], probs[i]) for j in short]
        wbest = min(range(len(short)), key=lambda j: (wd[j], j))
        t_w += time.perf_counter() - t0
        m = results["weighted"][i]
        if (m.index, m.distance) != (short[wbest], wd[wbest]):
            same = False
            print(f"  MISMATCH weighted {queries[i]!r}: vectorised {m.index}/{m.distance}, plain "
                  f"{short[wbest]}/{wd[wbest]}")
    n = max(1, len(sample))
    plain_ms = {"adelaidet": t_lev / n * 1e3, "replace": t_lev / n * 1e3, "weighted": (t_lev + t_w) / n * 1e3}
    targets = {"adelaidet": 20.0, "replace": 20.0, "weighted": 50.0}
    for rule in ("adelaidet", "replace", "weighted"):
        print(f"  {rule:9s} plain DP:   {plain_ms[rule]:8.1f} ms/query; vectorised is "
              f"{plain_ms[rule] / vec_ms[rule]:.0f}x faster (target <= {targets[rule]:.0f} ms: "
              f"{'met' if vec_ms[rule] <= targets[rule] else 'NOT met'})")
    print(f"lexicon: adelaidet={vec_ms['adelaidet']:.2f} ms replace={vec_ms['replace']:.2f} ms "
          f"weighted={vec_ms['weighted']:.2f} ms per query ({len(words)} words, {len(queries)} queries); "
          f"same as plain DP: {'yes' if same else 'no'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
