"""Sample quality per model: FID, KID, IS analogue, precision/recall and class entropy of
each registered model after a fixed training budget, beside the real-data floor.

    python benchmarks/quality.py                          # train every model, then score
    python benchmarks/quality.py --reuse                  # score runs benchmarks/models.py left
    python benchmarks/quality.py --data fashion-mnist --out runs/bench-fashion

Training uses benchmarks/models.py's budgets and command. Scoring is `gankit eval
--checkpoint RUN --json` (samples as many as the held-out split holds, so every row
compares with the floor row, `gankit eval --reference`). Every number comes from gankit's
own classifier for the dataset; the table's header names it by SHA-256.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import budget, train_one   # noqa: E402  (benchmarks/ is not a package)


def gankit_eval(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "gankit", "eval", "--json", *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def finished(run: Path, steps: int) -> bool:
    meta = run / "checkpoints" / "last.json"
    return meta.is_file() and json.loads(meta.read_text()).get("step") == steps


def row(name: str, steps: str, r: dict) -> str:
    is_ = f"{r['is_mean']:.2f}" if r.get("is_mean") is not None else "-"
    alarm = "collapse" if r.get("alarm") else ""
    return (f"| {name} | {steps} | {r['fid']:.2f} | {r['kid_mean']:.4f} | {is_} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r.get('class_entropy', float('nan')):.3f} | {alarm} |")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from gankit.models import MODELS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--out", default="runs/bench-models")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every step budget")
    ap.add_argument("--reuse", action="store_true", help="score finished runs in OUT instead "
                    "of training them again (same budget only)")
    args = ap.parse_args()

    out = Path(args.out)
    floor = gankit_eval("--reference", "--data", args.data)
    rows = [row("real data (held-out split)", "-", floor)]
    for name in args.only:
        steps = budget(name, args.scale)
        if not (args.reuse and finished(out / name, steps)):
            train_one(name, steps, args.data, out)
        r = gankit_eval("--checkpoint", str(out / name))
        rows.append(row(name, f"{steps:,}", r))
        print(rows[-1], flush=True)

    print(f"\nfeatures: {floor['extractor']}\nreference: {floor['reference']}\n"
          f"n_real {floor['n_real']:,}, n_fake {floor['n_fake']:,} per row\n")
    print("| model | steps | FID | KID | IS | precision | recall | class entropy | alarm |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
