"""Run every reader on the generated corpus and count the outcome classes.

    python fuzz/run_corpus.py --per-target 100 --out fuzz-report.json

Each input is written to a file of the target's suffix and read under a time limit (SIGALRM,
``--timeout`` seconds). Outcome classes: ``ok`` (a result), ``error`` (an openfer error that
names the file), ``error-unnamed`` (an openfer error whose message does not name the file),
``uncaught:<Type>`` (a bug), ``timeout`` (a bug). The exit status is 1 if any input gave a bug
class. Peak memory (max RSS) of the whole run is reported.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import corpus  # noqa: E402
from targets import TARGETS, expected_errors, names_the_file  # noqa: E402


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def classify(target: str, path: Path, timeout: float) -> tuple[str, str]:
    expected = expected_errors()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        TARGETS[target][1](path)
        return "ok", ""
    except Timeout:
        return "timeout", ""
    except expected as exc:
        return ("error" if names_the_file(exc, path) else "error-unnamed"), str(exc)[:300]
    except Exception as exc:  # noqa: BLE001 - the point is to find these
        return f"uncaught:{type(exc).__name__}", traceback.format_exc(limit=-3)[-1500:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-target", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--targets", help="comma-separated subset")
    parser.add_argument("--out", help="write the JSON report here")
    args = parser.parse_args(argv)

    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bugs, slowest, started = [], (0.0, ""), time.perf_counter()
    targets = args.targets.split(",") if args.targets else None
    with tempfile.TemporaryDirectory() as tmp:
        for target, name, data in corpus(args.per_target, args.seed, targets):
            path = Path(tmp) / f"{name}{TARGETS[target][0]}"
            path.write_bytes(data)
            start = time.perf_counter()
            outcome, detail = classify(target, path, args.timeout)
            elapsed = time.perf_counter() - start
            slowest = max(slowest, (elapsed, name))
            outcomes[target][outcome] += 1
            if outcome.startswith(("uncaught", "timeout", "error-unnamed")):
                bugs.append({"input": name, "outcome": outcome, "detail": detail})
            path.unlink()
    total = sum(sum(c.values()) for c in outcomes.values())
    report = {
        "inputs": total, "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "slowest": {"seconds": round(slowest[0], 2), "input": slowest[1]},
        "outcomes": {t: dict(c) for t, c in outcomes.items()},
        "totals": dict(sum(outcomes.values(), collections.Counter())),
        "bugs": bugs,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
