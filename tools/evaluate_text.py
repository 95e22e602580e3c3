#!/usr/bin/env python
"""Evaluate a scene-text submission with the official RRC rules (ICDAR 2015, Total-Text, CTW1500); see --help.

Needs only numpy and shapely (no torch, no detectron2): the metric is :mod:`fasttcm.evaluation.text_eval`, the
file formats :mod:`fasttcm.formats.text`.

Examples:
  python tools/evaluate_text.py --protocol icdar15 --gt gt.zip --det submit.zip --json result.json
  # the whole row a paper prints: end to end and word spotting with no lexicon and with Strong / Weak / Generic
  python tools/evaluate_text.py --protocol icdar15 --gt gt.zip --det submit.zip --lexicon-dir lexicons/
  python tools/evaluate_text.py --protocol totaltext --gt gt/ --det det/ --full weak_voc_new.txt:weak_voc_pair_list.txt
"""
import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence


from fasttcm.evaluation import lexicon as lx
from fasttcm.evaluation import text_eval as te


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/evaluate_text.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Scene-text detection and end-to-end evaluation, as the official RRC scripts compute it.\n\n"
            "icdar15:   gt_img_<id>.txt / res_img_<id>.txt, lines x1,y1,...,x4,y4[,transcription]\n"
            "totaltext: <7-digit id>.txt on both sides, lines x1,y1,...,xn,yn,####transcription\n"
            "           (ctw1500: same files and rules; reported under its own name)\n"
            "GT and detections: a folder or a zip with the files flat in it. '###' marks don't care.\n"
            "Matching: greedy in file order, one-to-one, IoU > 0.5; detections more than 0.5 (area\n"
            "precision) inside a don't-care region are ignored. Prints precision/recall/hmean (%) for\n"
            "detection only and end to end, with the counts of care GT, care detections and matches."
        ),
        epilog=(
            "JSON (--json): {protocol, word_spotting, num_images, num_images_without_detections,\n"
            "  det_only: {precision, recall, hmean, care_gt, care_det, matched}, e2e: {same},\n"
            "  per_sample: {id: {det_only, e2e, num_gt, num_det, det_only_pairs, e2e_pairs}},\n"
            "  warnings: {gt/det_polygons_repaired/empty, gt/det_ring_area_differs, quads_reordered,\n"
            "  unknown_det_images, ignored_files, messages}, sources}; rates are fractions in [0, 1].\n"
            "icdar15 measures each word by its ring as written (the official rule); self-intersecting\n"
            "quadrilaterals, whose ring area is smaller than their shape, are counted and warned about.\n"
            "Polygons: invalid ones are repaired (shapely make_valid) and counted. Detections for images\n"
            "without ground truth are ignored and listed. Malformed lines stop with file:line (exit status 2).\n"
            "Rules and where fasttcm defines what the official scripts leave undefined: docs/PROTOCOLS.md."
        ),
    )
    parser.add_argument("--protocol", required=True, choices=te.PROTOCOLS, help="evaluation protocol")
    parser.add_argument("--gt", required=True, help="ground truth: folder or zip in the protocol's layout")
    parser.add_argument("--det", required=True, help="detections: folder or zip in the protocol's layout")
    parser.add_argument("--word-spotting", action="store_true",
                        help="word-spotting mode: GT words failing the dictionary rule are don't care for end to "
                             "end (conventional for Total-Text)")
    parser.add_argument("--json", metavar="OUT", help="write the full result (with per-image numbers) to this file")
    lex = parser.add_argument_group(
        "lexicons", "With any of these, the table has end to end and word spotting rows for no lexicon and for each "
        "lexicon (docs/LEXICONS.md). WORDS[:PAIRS] is a word list, optionally with its pair list (the OS path "
        "separator, ':' on POSIX, between them).")
    lex.add_argument("--lexicon-dir", metavar="DIR",
                     help="a lexicon kit folder (Mask TextSpotter / AdelaiDet layout): finds every lexicon the "
                          "protocol reports (icdar15: strong, weak, generic; totaltext/ctw1500: full)")
    lex.add_argument("--strong", metavar="DIR", help="icdar15: folder of per-image voc_img_N.txt (or new_voc_img_N.txt "
                                                     "+ pair_voc_img_N.txt)")
    lex.add_argument("--weak", metavar="WORDS[:PAIRS]", help="icdar15: the test-set vocabulary")
    lex.add_argument("--generic", metavar="WORDS[:PAIRS]", help="icdar15: the ~90k-word generic vocabulary")
    lex.add_argument("--full", metavar="WORDS[:PAIRS]", help="totaltext/ctw1500: all words of the test set")
    lex.add_argument("--lexicon-rule", choices=lx.RULES, default=lx.DEFAULT_RULE,
                     help="matching rule (default %(default)s: nearest word by edit distance, kept below 1.5, else "
                          "the detection is dropped; replace: always the nearest word; weighted: Mask TextSpotter's "
                          "rule, needs per-character probabilities, which submission files do not carry)")
    lex.add_argument("--lexicon-max-distance", type=float, default=None, metavar="D",
                     help="keep a match when its distance is below D (default: the rule's own, 1.5 or none)")
    lex.add_argument("--lexicon-on-missing", choices=("error", "drop", "keep"), default="error",
                     help="an image without a Strong lexicon: stop naming it (default), drop its words, or keep them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    lexicon_args = dict(strong=args.strong, weak=args.weak, generic=args.generic, full=args.full)
    spotting = args.lexicon_dir is not None or any(v is not None for v in lexicon_args.values())
    try:
        if spotting:
            lexicons = lx.load_lexicons(args.protocol, args.lexicon_dir, **lexicon_args)
            if not lexicons:
                raise ValueError(f"no lexicon for protocol {args.protocol} found in {args.lexicon_dir}")
            result = lx.evaluate_spotting(
                args.gt, args.det, args.protocol, lexicons, rule=args.lexicon_rule,
                max_distance="default" if args.lexicon_max_distance is None else args.lexicon_max_distance,
                on_missing=args.lexicon_on_missing)
        else:
            result = te.evaluate(args.gt, args.det, args.protocol, args.word_spotting)
    except (ValueError, OSError) as e:  # bad files or paths: one line that names them
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(lx.format_spotting_table(result) if spotting else te.format_table(result))
    if args.json:
        try:
            d = os.path.dirname(os.path.abspath(args.json))
            os.makedirs(d, exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1, ensure_ascii=False, default=te.json_default)
        except OSError as e:
            print(f"error: cannot write {args.json}: {e}", file=sys.stderr)
            return 2
        print(f"  result written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
