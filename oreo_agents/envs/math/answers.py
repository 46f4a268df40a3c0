"""Final-answer extraction and checking for the math env.

Two answer formats, a property of the problem source:

- ``"gsm8k"`` — the answer follows ``####`` and is compared with a **strict numeric check**: currency signs, thousands
  commas, a trailing ``%`` and trailing unit words are ignored, and the numbers must be exactly equal as fractions
  (``"1,000" == "1000"``, ``"$18" == "18"``, ``"0.50" == "0.5"``, ``"50%" == "50"``). Anything that is not exactly one
  number (``"18 or 20"``, ``"1,00"``, ``"1e5"``) is wrong. References that are not numbers (some reasoning-gym tasks)
  are compared as case- and whitespace-normalized strings.
- ``"boxed"`` — the answer is the content of the last ``\\boxed{...}`` (or follows ``####``) and is compared with
  ``math-verify`` (LaTeX parsing only: no ``sympy.parse_expr``, so answer text is never evaluated as Python code), after a
  fast exact numeric check.

``math-verify`` bounds itself with ``SIGALRM``, which only works on the main thread, and a signal cannot interrupt a C
routine (``10^{10^{10}}`` stalls in integer arithmetic). So it runs in a persistent worker *process*
(:mod:`oreo_agents.envs.math.verify_worker`) that we kill when it overruns: the check is bounded from any thread. Inputs
that are pathological on their face (huge exponents, power towers, deep nesting, huge factorials, very long text) are
rejected before any parsing.

    >>> extract_final_answer("So she pays 3 * 6 = 18. #### $18", "gsm8k")
    '$18'
    >>> check_answer("$18", "18", "gsm8k")
    True
    >>> check_answer("1,000", "1000.0", "gsm8k")
    True
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
from fractions import Fraction

ANSWER_FORMATS = ("gsm8k", "boxed")
MAX_ANSWER_CHARS = 400  # real GSM8K/MATH answers are far shorter; longer text is garbage or an attack
MAX_NESTING = 12
MAX_EXPONENT = 400
MAX_FACTORIAL = 100
VERIFY_TIMEOUT_S = 5.0  # per math-verify call, once the worker is up
WORKER_STARTUP_TIMEOUT_S = 120.0  # importing sympy/antlr on a busy 2-core machine can take a while

_FINAL_RE = re.compile(r"####\s*(.*)$")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_CURRENCY = "$€£¥"
# One number: optional sign, digits with correct thousands grouping or none, optional decimals; or a plain fraction a/b.
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_RE = re.compile(rf"^(?P<num>{_NUM})(?:\s*/\s*(?P<den>\d+))?$")
_TOWER_RE = re.compile(r"(?:\^|\*\*)\s*(?:\{[^{}]*\}|[-+]?\\?[\w.]+)\s*(?:\^|\*\*)")  # a^b^c, a^{b}^c
# A unit word is a whole run of letters (look-behind/ahead): were it free to end anywhere, a long letter run could be
# split into words in exponentially many ways, and a reply like "5 aaaa...a1" would hang the regex engine (ReDoS).
_UNIT_RE = re.compile(
    r"(?:\s*(?:\\%|%|(?<![A-Za-z.])[A-Za-z][A-Za-z.]*(?![A-Za-z.])|\\text\{[A-Za-z .]*\}|\\mbox\{[A-Za-z .]*\}))+$"
)


# --- extraction -------------------------------------------------------------------------------------------------------
def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (braces matched), or None.

    An unclosed box yields ``""`` (a malformed answer), so the episode still ends and scores 0.
    """
    matches = list(_BOXED_RE.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return ""


def extract_final_answer(step: str, answer_format: str = "gsm8k") -> str | None:
    """The final answer a step gives, or None when the step is not a final-answer step.

    ``#### x`` is a final answer in every format (the shared prompt asks for it); ``\\boxed{x}`` also is for ``"boxed"``
    sources. An empty answer (``"####"``) is returned as ``""``: the episode ends, reward 0.
    """
    match = _FINAL_RE.search(step)
    if match:
        return match.group(1).strip()
    if answer_format == "boxed":
        return last_boxed(step)
    return None


# --- guards -----------------------------------------------------------------------------------------------------------
def _max_nesting(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]":
            depth = max(0, depth - 1)
    return best


def _exponents(text: str) -> list[str]:
    """The exponent of every ``^`` / ``**``: a braced group, or the next number/symbol."""
    out = []
    for match in re.finditer(r"\^|\*\*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("{"):
            depth, end = 0, len(rest)
            for i, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    end = i
                    break
            out.append(rest[1:end])
        else:
            token = re.match(r"[-+]?\d+(?:\.\d+)?|\\?[A-Za-z]+|.", rest)
            out.append(token.group(0) if token else "")
    return out


def is_pathological(text: str) -> bool:
    """True for answers that could stall a parser or a CAS: we score them 0 without trying.

    Rejected: more than ``MAX_ANSWER_CHARS`` characters, nesting deeper than ``MAX_NESTING``, power towers
    (``a^{b^c}``, ``a^b^c``), exponents beyond ``MAX_EXPONENT``, factorials of numbers beyond ``MAX_FACTORIAL`` or
    iterated factorials, more than 8 powers.
    """
    if len(text) > MAX_ANSWER_CHARS or _max_nesting(text) > MAX_NESTING:
        return True
    exponents = _exponents(text)
    if len(exponents) > 8 or _TOWER_RE.search(text):
        return True
    for exp in exponents:
        if "^" in exp or "**" in exp or "!" in exp:
            return True
        for number in re.findall(r"\d+(?:\.\d+)?", exp):
            if float(number) > MAX_EXPONENT:
                return True
    if re.search(r"!\s*!|\)\s*!", text):  # n!!, (expr)! — unbounded growth
        return True
    return any(int(n) > MAX_FACTORIAL for n in re.findall(r"(\d+)\s*!", text))


# --- strict numeric check ---------------------------------------------------------------------------------------------
def parse_number(text: str) -> Fraction | None:
    """Exactly one number in ``text`` as a Fraction, or None (GSM8K-style strict parsing).

    Ignored around the number: ``$``-math delimiters, currency signs (also ``\\$``), a trailing ``%``/``\\%``, trailing
    unit words and a final period. Exponents (``1e5``) are not numbers here: they would let ``1e999999999`` build a
    billion-digit integer.

        >>> parse_number("$1,000.50")
        Fraction(2001, 2)
        >>> parse_number("18 or 20") is None
        True
    """
    if len(text) > MAX_ANSWER_CHARS:
        return None
    s = text.strip().replace("\\!", "").replace("\\,", "").replace("−", "-")
    s = s.strip("$ ").rstrip(".").strip()
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s).strip()
    s = s.replace("\\$", "")
    s = s.lstrip(_CURRENCY).strip()
    if s[:1] in "-+" and s[1:2] in _CURRENCY:  # "-$5"
        s = s[0] + s[2:].lstrip(_CURRENCY)
    s = _UNIT_RE.sub("", s).strip()
    frac = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", s)
    if frac:
        s = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}"
    match = _NUMBER_RE.match(s)
    if not match:
        return None
    value = Fraction(match.group("num").replace(",", ""))
    if match.group("den") is not None:
        den = int(match.group("den"))
        if den == 0:
            return None
        value /= den
    return value


def _normalize_string(text: str) -> str:
    return " ".join(text.strip().rstrip(".").lower().split())


def numeric_equal(predicted: str, reference: str) -> bool | None:
    """Exact numeric equality, or None when either side is not a plain number."""
    a, b = parse_number(predicted), parse_number(reference)
    if a is None or b is None:
        return None
    return a == b


# --- bounded math-verify ----------------------------------------------------------------------------------------------
class _VerifyWorker:
    """One long-lived ``python -m oreo_agents.envs.math.verify_worker`` process, killed and restarted on overrun."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "oreo_agents.envs.math.verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        if self._readline(proc, WORKER_STARTUP_TIMEOUT_S) != "ready":
            self._kill(proc)
            raise RuntimeError("the math-verify worker process did not start (is math-verify installed?)")
        return proc

    @staticmethod
    def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = proc.stdout.readline()
        return line.strip() if line else None

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def verify(self, gold: str, predicted: str, timeout: float) -> bool | None:
        """True/False from math-verify, or None when it overran ``timeout`` seconds (the worker is then killed)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps({"gold": gold, "pred": predicted, "timeout": timeout}) + "\n")
                proc.stdin.flush()
                line = self._readline(proc, timeout + 0.5)  # the worker's alarm (whole seconds) usually fires first
            except (BrokenPipeError, OSError):
                line = None
            if line is None:
                self._kill(proc)
                self._proc = None
                return None
            reply = json.loads(line)
            return None if reply.get("timeout") else bool(reply.get("equal"))

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._kill(self._proc)
        self._proc = None


_WORKER = _VerifyWorker()


def math_verify_equal(gold: str, predicted: str, timeout: float = VERIFY_TIMEOUT_S) -> bool | None:
    """math-verify's verdict on two LaTeX answers, bounded by ``timeout`` and safe to call from any thread.

    Returns None when the check timed out (callers score that 0). No pre-filter here: use :func:`check_answer`.
    """
    return _WORKER.verify(gold, predicted, timeout)


def check_answer(
    predicted: str | None,
    reference: str,
    answer_format: str = "gsm8k",
    *,
    timeout: float = VERIFY_TIMEOUT_S,
) -> bool:
    """Whether ``predicted`` (an extracted final answer) is correct. Never raises, never hangs past ~``timeout``."""
    if predicted is None or not predicted.strip() or is_pathological(predicted):
        return False
    same = numeric_equal(predicted, reference)
    if same is not None and (same or answer_format == "gsm8k"):
        return same
    if answer_format == "gsm8k":
        if parse_number(reference) is not None:
            return False  # a numeric reference demands a number
        return _normalize_string(predicted) == _normalize_string(reference)
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r} (known: {', '.join(ANSWER_FORMATS)})")
    if _normalize_string(predicted) == _normalize_string(reference):
        return True
    return bool(math_verify_equal(reference, predicted, timeout))
