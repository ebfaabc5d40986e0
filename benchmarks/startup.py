"""Start-up of the `visionr1` command before and after lazy command registration, interleaved.

    python benchmarks/startup.py                         # this checkout vs commit 8d2cd49 (eager registration)
    python benchmarks/startup.py --before-ref main --rounds 20 --out runs/bench/startup

"before" is the source tree of ``--before-ref`` (``git archive``, nothing installed), "after" this checkout's
``src/``; both run with this interpreter and ``PYTHONPATH`` pointing at their tree. Commands measured, each a
fresh process: ``visionr1 train --help`` (what every ``train`` pays before its own work), ``visionr1 eval
--help``, ``visionr1 --help`` (lists every command, so it imports them all in both versions). Rounds rotate
the order (interleave.py). The machine may be shared: load averages are in the output.
Writes ``startup.json`` and ``startup.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import interleaved, markdown_table, summarise, timed_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"train --help": ["train", "--help"], "eval --help": ["eval", "--help"], "--help": ["--help"]}


def checkout_src(ref: str, dest: Path) -> Path:
    """``src/`` of ``ref`` extracted under ``dest``."""
    blob = subprocess.run(["git", "archive", ref, "src"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-ref", default="8d2cd49", help="Git ref of the eager-registration CLI.")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/startup"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"before_ref": args.before_ref, "rounds": args.rounds, "commands": {}}
    with tempfile.TemporaryDirectory(prefix="visionr1-startup-") as tmp:
        trees = {"before": checkout_src(args.before_ref, Path(tmp)), "after": REPO / "src"}
        for label, argv in COMMANDS.items():
            def run(version: str, r: int, argv=argv) -> dict:
                env = {**os.environ, "PYTHONPATH": str(trees[version]), "COLUMNS": "100"}
                return timed_run([sys.executable, "-m", "visionr1", *argv], env)

            print(f"== visionr1 {label}")
            run("after", -1)  # warm-up: bytecode caches of both trees
            run("before", -1)
            raw = interleaved(["before", "after"], args.rounds, run)
            report["commands"][label] = {"runs": raw, "summary": summarise(raw, "before")}
    (args.out / "startup.json").write_text(json.dumps(report, indent=2))
    md = [f"# `visionr1` start-up, {args.rounds} interleaved rounds (before = {args.before_ref})\n"]
    for label, res in report["commands"].items():
        md += [f"## `visionr1 {label}` (wall seconds per process)\n", markdown_table(res["summary"], "before"), ""]
    (args.out / "startup.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
