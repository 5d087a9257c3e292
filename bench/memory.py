"""Peak RSS of every contender process after the latency and backlog runs.

bench/latency.py and bench/backlog.py run each bot as a subprocess and read VmHWM from
/proc/<pid>/status just before stopping it (for Aegis: after the 10,000-dossier latency run,
and after draining the backlog). This collects those figures from their result files.
Goal (issue 7): Aegis under 100 MB.

    .venv/bin/python bench/memory.py   (after bench/latency.py and bench/backlog.py)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, machine, write_result

GOAL_MB = 100.0


def main() -> None:
    runs: dict[str, dict[str, float | None]] = {}
    sources: dict[str, object] = {}
    for name in ("latency", "backlog"):
        path = RESULTS / f"{name}.json"
        if not path.exists():
            print(f"{path} missing: run bench/{name}.py first", file=sys.stderr)
            continue
        result = json.loads(path.read_text())
        sources[name] = {"date": result["machine"]["date"], "note": result.get("note", "")}
        if name == "latency":
            for contender, info in result["contenders"].items():
                runs.setdefault(contender, {})["latency"] = info["peak_rss_mb"]
        else:
            for contender, info in result["backlog"].items():
                if isinstance(info, dict) and "peak_rss_mb" in info:
                    runs.setdefault(contender, {})["backlog"] = info["peak_rss_mb"]
    peaks = {
        contender: max((v for v in per_run.values() if v is not None), default=None)
        for contender, per_run in runs.items()
    }
    aegis = peaks.get("aegis")
    report = {
        "machine": machine(),
        "sources": sources,
        "peak_rss_mb": runs,
        "max_peak_rss_mb": peaks,
        "goal": f"Aegis < {GOAL_MB:.0f} MB",
        "goal_met": None if aegis is None else aegis < GOAL_MB,
    }
    print(f"{'process':22} {'latency MB':>10} {'backlog MB':>10}")
    for contender, per_run in runs.items():
        cells = [per_run.get(k) for k in ("latency", "backlog")]
        print(
            f"{contender:22} "
            + " ".join(f"{c:10.1f}" if c is not None else f"{'—':>10}" for c in cells)
        )
    print(f"Aegis goal < {GOAL_MB:.0f} MB: {report['goal_met']}")
    print(f"written to {write_result('memory', report)}")


if __name__ == "__main__":
    main()
