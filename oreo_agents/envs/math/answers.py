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
rejected before any parsing, and so are the inputs that make a CAS compute for seconds: factorials and ``\\Gamma`` of
big numbers in any bracket (``{99999999}!``, ``\\Gamma(99999999)``), binomials of big numbers, determinants of
matrices beyond 3x3, sums and products with big bounds. ``benchmarks/hostile_math_answers.py`` measures the filter.

Digits are ASCII only. ``١٨`` (Arabic-Indic), ``１８`` (fullwidth) and ``𝟏𝟖`` (mathematical bold) are not 18: GSM8K's and
MATH's graders read ASCII digits, and a reward that accepted look-alike digits would score text the observation space
cannot always hold (``𝟏𝟖`` lies outside the Basic Multilingual Plane). Such answers score 0 in both formats.

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
import warnings
from fractions import Fraction

ANSWER_FORMATS = ("gsm8k", "boxed")
MAX_ANSWER_CHARS = 400  # real GSM8K/MATH answers are far shorter; longer text is garbage or an attack
MAX_NESTING = 12
MAX_EXPONENT = 400
MAX_FACTORIAL = 100  # also the largest \Gamma argument
MAX_BINOMIAL = 10_000  # binom(10^4, 5*10^3) takes 20 ms in sympy, binom(10^5, 5*10^4) 1.5 s
MAX_DET_SIZE = 3  # a symbolic 4x4 determinant takes 2.5 s in math-verify, 5x5 overruns 5 s
MAX_MATRIX_CELLS = 100
MAX_SUM_BOUND = 100  # \sum_{i=1}^{400} i^{400} overruns 5 s
MAX_SYMBOLIC_EXPONENT = 30  # (x+1)^{400}, (x+y+z)^{60} and \int x^{399}... overrun 5 s when expanded
VERIFY_TIMEOUT_S = 5.0  # per math-verify call, once the worker is up
WORKER_STARTUP_TIMEOUT_S = 120.0  # importing sympy/antlr on a busy 2-core machine can take a while

_FINAL_RE = re.compile(r"####\s*(.*)$")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_CURRENCY = "$€£¥"
# One number: optional sign, digits with correct thousands grouping or none, optional decimals; or a plain fraction a/b.
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_RE = re.compile(rf"^(?P<num>{_NUM})(?:\s*/\s*(?P<den>\d+))?$", re.ASCII)  # ASCII digits only
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


_BRACKETS = {"{": "}", "(": ")", "[": "]"}
_GAMMA_RE = re.compile(r"\\Gamma(?![A-Za-z])|\\(?:operatorname|mathrm|text)\s*\{\s*\\?[Gg]amma\s*\}")
_BINOM_RE = re.compile(r"\\[dt]?binom(?![A-Za-z])")
_MATRIX_RE = re.compile(r"\\begin\s*\{\s*([a-zA-Z]*matrix|array)\*?\s*\}(.*?)\\end\s*\{", re.S)
_ASCII_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


def _argument(text: str, start: int) -> tuple[str, int]:
    """The argument that starts at ``text[start:]``: a bracketed group (``{..}``, ``(..)``, ``[..]``, ``\\left(..\\right)``,
    brackets matched) or else one token. Returns (argument, index after it)."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    if text.startswith("\\left", i):
        i += len("\\left")
        while i < len(text) and text[i].isspace():
            i += 1
    if i < len(text) and text[i] in _BRACKETS:
        opening, closing, depth = text[i], _BRACKETS[text[i]], 0
        for j in range(i, len(text)):
            depth += text[j] == opening
            depth -= text[j] == closing
            if depth == 0:
                return text[i + 1 : j], j + 1
        return text[i + 1 :], len(text)  # unclosed: the rest
    token = re.match(r"[-+]?\d+(?:\.\d+)?|\\?[A-Za-z]+|.", text[i:], re.ASCII)
    return (token.group(0), i + token.end()) if token else ("", i)


def _numbers(text: str) -> list[float]:
    return [float(n) for n in _ASCII_NUMBER_RE.findall(text)]


def _explodes(argument: str, bound: int) -> bool:
    """An argument of a fast-growing function that is too big to evaluate: a number beyond ``bound``, or a power or
    factorial inside (whose value the guard cannot bound)."""
    return ("^" in argument or "**" in argument or "!" in argument or "\\Gamma" in argument or "binom" in argument
            or any(n > bound for n in _numbers(argument)))


def _factorial_too_big(text: str) -> bool:
    """``n!`` with n beyond ``MAX_FACTORIAL``, in any bracket (``{99999999}!``, ``(10^9)!``), or an iterated one."""
    if re.search(r"!\s*!", text):  # n!!: unbounded growth
        return True
    for match in re.finditer(r"!", text):
        before = text[: match.start()].rstrip()
        if before.endswith("\\right"):
            before = before[: -len("\\right")]
        plain = re.search(r"(\d+)$", before, re.ASCII)
        if plain:
            if int(plain.group(1)) > MAX_FACTORIAL:
                return True
        elif before[-1:] in ")}]":
            group = re.search(r"[({\[]\s*(\d+)\s*[)}\]]$", before, re.ASCII)  # {5}! and (5)! are just 5!
            if group is None or int(group.group(1)) > MAX_FACTORIAL:
                return True  # (expr)!: the guard cannot bound expr
    return False


def _costly_function(text: str) -> bool:
    """\\Gamma, binomials, determinants, big matrices, sums and products that would keep a CAS busy for seconds."""
    for match in _GAMMA_RE.finditer(text):
        if _explodes(_argument(text, match.end())[0], MAX_FACTORIAL):
            return True
    for match in _BINOM_RE.finditer(text):
        top, end = _argument(text, match.end())
        bottom, _ = _argument(text, end)
        if _explodes(top, MAX_BINOMIAL) or _explodes(bottom, MAX_BINOMIAL):
            return True
    if "\\choose" in text and _explodes(text.replace("\\choose", ""), MAX_BINOMIAL):
        return True
    determinant = "\\det" in text or "vmatrix" in text or "\\left|" in text
    for match in _MATRIX_RE.finditer(text):
        rows = [r for r in re.split(r"\\\\", match.group(2)) if r.strip()]
        cols = max((r.count("&") + 1 for r in rows), default=0)
        if len(rows) * cols > MAX_MATRIX_CELLS:
            return True
        if determinant and max(len(rows), cols) > MAX_DET_SIZE:
            return True
    if re.search(r"\\(?:sum|prod)(?![A-Za-z])", text) and any(n > MAX_SUM_BOUND for n in _numbers(text)):
        return True
    # A big power of a bracketed expression, or any big power under an integral, makes the CAS expand a huge polynomial.
    big_power = any(n > MAX_SYMBOLIC_EXPONENT for exp in _exponents(text) for n in _numbers(exp))
    variable = re.search(r"(?<![\\A-Za-z])[A-Za-z](?![A-Za-z])", text)  # a letter that is not part of a \command
    bracket_power = re.search(r"[)}\]]\s*(?:\^|\*\*)", text)
    if big_power and variable and (bracket_power or re.search(r"\\[io]*int(?![A-Za-z])", text)):
        return True
    return False


def has_foreign_digits(text: str) -> bool:
    """True when ``text`` writes a digit outside ASCII (``١٨``, ``１８``, ``𝟏𝟖``): not a number here (see the module doc)."""
    return any(ch.isdecimal() and not ch.isascii() for ch in text)


def is_pathological(text: str) -> bool:
    """True for answers that could stall a parser or a CAS: we score them 0 without trying.

    Rejected: more than ``MAX_ANSWER_CHARS`` characters, nesting deeper than ``MAX_NESTING``, power towers
    (``a^{b^c}``, ``a^b^c``), exponents beyond ``MAX_EXPONENT``, more than 8 powers, factorials of numbers beyond
    ``MAX_FACTORIAL`` (in any bracket) or iterated ones, ``\\Gamma`` beyond ``MAX_FACTORIAL``, binomials beyond
    ``MAX_BINOMIAL``, determinants beyond ``MAX_DET_SIZE`` rows or columns, matrices beyond ``MAX_MATRIX_CELLS``
    cells, sums and products with a number beyond ``MAX_SUM_BOUND``, powers beyond ``MAX_SYMBOLIC_EXPONENT`` of a
    bracketed expression or under an integral.
    """
    if len(text) > MAX_ANSWER_CHARS or _max_nesting(text) > MAX_NESTING:
        return True
    if re.search(r"\d[eE][-+]?\d{4,}", text):  # 1e999999999: a billion-digit number to a CAS
        return True
    exponents = _exponents(text)
    if len(exponents) > 8 or _TOWER_RE.search(text):
        return True
    for exp in exponents:
        if "^" in exp or "**" in exp or "!" in exp:
            return True
        if any(n > MAX_EXPONENT for n in _numbers(exp)):
            return True
    return _factorial_too_big(text) or _costly_function(text)


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
    if len(s) > 1 and s[0] in "-+" and s[1] in _CURRENCY:  # "-$5" (`"" in "-+"` is True: test the length first)
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
            if reply.get("timeout"):
                # math-verify's alarm interrupted sympy mid-computation; a fresh worker for the next answer, so no
                # half-updated global state (caches, evaluate flags) can change a later verdict.
                self._kill(proc)
                self._proc = None
                return None
            return bool(reply.get("equal"))

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
    """Whether ``predicted`` (an extracted final answer) is correct. Never hangs past ~``timeout``, and never raises on
    any answer text: an answer the checks cannot handle is wrong (a warning names it). Only an unknown
    ``answer_format`` (a caller's bug) raises ``ValueError``."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r} (known: {', '.join(ANSWER_FORMATS)})")
    if predicted is None or not predicted.strip():
        return False
    try:
        return _check(predicted, reference, answer_format, timeout)
    except Exception as exc:  # collect, eval and beam search must survive any model output
        warnings.warn(f"check_answer: scored {predicted[:80]!r} as wrong after {type(exc).__name__}: {exc}", stacklevel=2)
        return False


def _check(predicted: str, reference: str, answer_format: str, timeout: float) -> bool:
    if is_pathological(predicted) or has_foreign_digits(predicted):
        return False
    same = numeric_equal(predicted, reference)
    if same is not None and (same or answer_format == "gsm8k"):
        return same
    if answer_format == "gsm8k":
        if parse_number(reference) is not None:
            return False  # a numeric reference demands a number
        return _normalize_string(predicted) == _normalize_string(reference)
    if _normalize_string(predicted) == _normalize_string(reference):
        return True
    return bool(math_verify_equal(reference, predicted, timeout))
