"""The math-verify worker process: ``python -m oreo_agents.envs.math.verify_worker``.

Reads one JSON request per line on stdin (``{"gold", "pred", "timeout"}``), answers one JSON line on stdout
(``{"equal": bool}`` or ``{"timeout": true}``). It runs math-verify on its own main thread, so math-verify's SIGALRM
timeouts work here; the parent (:mod:`oreo_agents.envs.math.answers`) kills the whole process if even that overruns.

Only LaTeX extraction is used: math-verify's expression extractor goes through ``sympy.parse_expr``, which ``eval``s
its input, and answers are untrusted text.
"""

from __future__ import annotations

import json
import math
import sys


def _wrap(answer: str) -> str:
    return answer if "\\boxed" in answer else "\\boxed{" + answer + "}"


def main() -> None:
    from math_verify import LatexExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    out, sys.stdout = sys.stdout, sys.stderr  # a library print must not corrupt the protocol
    print("ready", file=out, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        seconds = max(1, math.ceil(float(request.get("timeout", 5))))  # SIGALRM counts whole seconds
        try:
            gold = parse(_wrap(request["gold"]), extraction_config=config, parsing_timeout=seconds)
            pred = parse(_wrap(request["pred"]), extraction_config=config, parsing_timeout=seconds)
            equal = bool(gold and pred and verify(gold, pred, timeout_seconds=seconds, raise_on_error=True))
            reply = {"equal": equal}
        except TimeoutException:
            reply = {"timeout": True}
        except Exception:  # a parser bug on garbage input is a wrong answer, not a crash
            reply = {"equal": False}
        print(json.dumps(reply), file=out, flush=True)


if __name__ == "__main__":
    main()
