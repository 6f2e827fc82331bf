"""Print the mutation score of each mutated module from mutmut's results (``mutants/``).

Run by ``make mutate`` after mutmut; ``--survivors`` lists the surviving mutants by name
(``mutmut show NAME`` prints the change). Only mutants that were run count: a module's
functions that no target glob selected are "not checked" and left out of the score.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # failed, pytest error, timeout, type check
SURVIVED = {0}
NO_TESTS = {5, 33}


def main(argv: list[str]) -> int:
    root = Path("mutants")
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print("No mutmut results under mutants/: run `make mutate` first.", file=sys.stderr)
        return 1
    survivors: list[str] = []
    total: Counter[str] = Counter()
    print(f"{'module':<48} {'killed':>7} {'survived':>9} {'no tests':>9} {'score':>7}")
    for meta in metas:
        module = str(meta.relative_to(root)).removesuffix(".py.meta").replace("/", ".")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts: Counter[str] = Counter()
        for name, code in codes.items():
            if code is None:
                continue
            if code in KILLED:
                counts["killed"] += 1
            elif code in SURVIVED:
                counts["survived"] += 1
                survivors.append(name)
            elif code in NO_TESTS:
                counts["no tests"] += 1
                survivors.append(name)
            else:
                counts["other"] += 1
                survivors.append(name)
        ran = sum(counts.values())
        if not ran:
            continue
        total.update(counts)
        score = 100 * counts["killed"] / ran
        print(
            f"{module:<48} {counts['killed']:>7} {counts['survived']:>9} "
            f"{counts['no tests']:>9} {score:>6.1f}%"
        )
    ran = sum(total.values())
    print(
        f"{'all':<48} {total['killed']:>7} {total['survived']:>9} {total['no tests']:>9} "
        f"{100 * total['killed'] / max(ran, 1):>6.1f}%"
    )
    if "--survivors" in argv:
        print("\n".join(sorted(survivors)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
