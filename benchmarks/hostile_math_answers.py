"""Hostile final answers through the math checker: how many are decided within a budget, how many burn the whole
math-verify timeout, how many raise (issue #14 item 2).

    PYTHONPATH=. python benchmarks/hostile_math_answers.py                  # both formats, 5 s verify timeout
    PYTHONPATH=. python benchmarks/hostile_math_answers.py --budget 1 --formats boxed

An answer "survives" when ``check_answer`` returns False (the reference is 18 and none of the list is 18) within
``--budget`` seconds without raising. "slow" means it returned, but only after the budget (the CAS ran). The first
call also starts the math-verify worker; that start-up is done before timing.
"""

from __future__ import annotations

import argparse
import time

from oreo_agents.envs.hostile import hostile_math_answers
from oreo_agents.envs.math.answers import check_answer, math_verify_equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", nargs="+", default=["gsm8k", "boxed"])
    parser.add_argument("--timeout", type=float, default=5.0, help="math-verify timeout per answer (the env default)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds an answer may take to count as survived")
    parser.add_argument("--show", type=int, default=10, help="list this many of the slow and failed answers")
    args = parser.parse_args()
    math_verify_equal("1", "1")  # start the worker outside the timings
    answers = hostile_math_answers()
    for fmt in args.formats:
        survived, slow, failed, worst = [], [], [], 0.0
        for answer in answers:
            start = time.monotonic()
            try:
                verdict = check_answer(answer, "18", fmt, timeout=args.timeout)
            except Exception as exc:  # noqa: BLE001 - counted and shown
                failed.append((answer, f"{type(exc).__name__}: {exc}"))
                continue
            seconds = time.monotonic() - start
            worst = max(worst, seconds)
            if verdict is not False:
                failed.append((answer, f"scored {verdict!r}"))
            elif seconds > args.budget:
                slow.append((answer, f"{seconds:.1f} s"))
            else:
                survived.append(answer)
        print(f"{fmt}: tried {len(answers)}, survived {len(survived)} (within {args.budget:g} s), "
              f"slow {len(slow)}, failed {len(failed)}; slowest {worst:.2f} s")
        for answer, why in (slow + failed)[: args.show]:
            print(f"    {answer[:60]!r}: {why[:100]}")


if __name__ == "__main__":
    main()
