"""gankit synth-report: judge a synthetic CSV table against the real one it imitates, as a
summary on the terminal and, on request, an HTML page and a JSON file (gankit/synth_report.py
defines the scores)."""

from __future__ import annotations

import argparse

from .common import check_not_input, check_output


def add(sub) -> None:
    p = sub.add_parser(
        "synth-report", help="judge a synthetic CSV table against the real one",
        description="Compare a synthetic table with the real table its generator learnt from: "
        "column shapes and column pair trends (SDMetrics' quality score), with --target and "
        "--holdout the machine-learning efficacy (models trained on the synthetic rows, tested "
        "on held-out real rows, against models trained on the real rows), and the distance "
        "of synthetic rows to the closest real row (with --holdout: whether they lie closer to "
        "the training rows than to rows the generator never saw). Column types come from the "
        "real table: text and whole-number columns of at most 20 values are categorical.")
    p.set_defaults(run=run)
    p.add_argument("real", metavar="REAL.csv", help="the real rows the generator was trained on")
    p.add_argument("synthetic", metavar="SYNTH.csv",
                   help="the synthetic rows, with the real table's columns")
    p.add_argument("--holdout", metavar="HOLDOUT.csv", help="real rows the generator never saw, "
                   "with the same columns: for the efficacy and the privacy share")
    p.add_argument("--target", metavar="COLUMN", help="the column the efficacy models predict "
                   "(a categorical one: F1, of the rarer class when it has two; a numeric one: "
                   "R2); needs --holdout")
    p.add_argument("--html", metavar="REPORT.html", help="write the report as one HTML page, "
                   "pictures inside")
    p.add_argument("--json", metavar="REPORT.json", help="write every score as JSON")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the samples and the models (default: 0)")


def run(args: argparse.Namespace) -> int:
    from ..errors import GankitError
    from ..report_pages import write_html
    from ..synth_report import judge, summary, write_json

    outputs = [("--html", args.html), ("--json", args.json)]
    for flag, out in outputs:
        if out:
            check_output(out, flag)
            for source in (args.real, args.synthetic, args.holdout):
                if source:
                    check_not_input(source, (flag, out))
    if args.html and args.json and args.html == args.json:
        raise GankitError(f"--html and --json are both {args.html}: give each its own file")
    report = judge(args.real, args.synthetic, args.holdout, args.target, args.seed)
    print(summary(report))
    written = []
    if args.html:
        write_html(report, args.html)
        written.append(args.html)
    if args.json:
        write_json(report, args.json)
        written.append(args.json)
    if written:
        print(f"wrote {', '.join(written)}")
    return 0
