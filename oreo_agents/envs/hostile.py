"""Hostile inputs for the text envs, and the fuzz loop that checks an env survives them.

A policy's reply can be anything: control characters, emoji and other characters beyond the Basic Multilingual Plane,
megabytes of text, markup, brackets that look like web-shop commands, a non-string object. Every env here must answer
each such action as an ordinary step (``oreo_agents.envs.core``): no exception, an observation inside its observation
space, the ``info`` keys every env promises. :func:`fuzz_env` checks exactly that; the unit tests run a few hundred
seeded actions per env, ``benchmarks/fuzz_env_actions.py`` runs many more.

:func:`hostile_math_answers` is the matching list for the math answer checker (``#### $``, look-alike digits, huge
factorials, ``\\Gamma``, binomials, determinants, deep nesting...), measured by ``benchmarks/hostile_math_answers.py``.

    >>> import random
    >>> actions = hostile_actions(random.Random(0), 5)
    >>> len(actions)
    5
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from oreo_agents.envs.core import INFO_ADMISSIBLE, INFO_GOAL, INFO_SPLIT, INFO_TASK_ID, INFO_TASK_TYPE, INFO_WON

_FIXED: list[Any] = [
    "", " ", "\n", "\r\n\r\n", "\x00", "\x1b[31mred\x1b[0m", "\t\tgo to desk 1", "look\nlook", "\u200b", "\ufeff",
    "\ud800", "🤔", "𝟏𝟖", "١٨", "１８", "Ω≈ç√∫", "ﷺ" * 50, "\u202eevil", "[/]", "[bold]x[/bold]", "foo[/]",
    "search[]", "search[" + "a" * 5000 + "]", "click[]", "click[[[[]]]]", "click[buy now]", "click[< prev]",
    "search[\x00]", "search[🤔]", "click[back to search", "####", "#### $", "#### €", "#### .", "#### 𝟏𝟖",
    "\\boxed{", "\\boxed{}", "\\boxed{{99999999}!}", "#### 10^{10^{10}}", "#### " + "9" * 5000, "{" * 10_000,
    "go to " + "x" * 100_000, "take " * 2000, "%s%s%n", "{0}{1}", "'; DROP TABLE x; --", "<script>alert(1)</script>",
    None, 0, -1, 3.14, float("nan"), True, b"look", ["look"], {"action": "look"}, ("go", "to"), object(),
]
_ALPHABETS = (
    string.printable,
    "".join(chr(c) for c in range(0x20, 0x250)),
    "".join(chr(c) for c in range(0x0600, 0x0700)) + "".join(chr(c) for c in range(0x4E00, 0x4E80)),
    "".join(chr(c) for c in range(0x1F300, 0x1F340)) + "".join(chr(c) for c in range(0x1D400, 0x1D440)),  # astral
    "".join(chr(c) for c in range(0, 0x20)) + "\x7f\x85\u2028\u2029",  # controls and line separators
    "[]{}()<>#$\\/|!^*&",
)


def hostile_actions(rng: random.Random, n: int, admissible: list[str] | None = None) -> list[Any]:
    """``n`` actions: the fixed hostile ones first (cycled), then random mixtures of odd alphabets, lengths and
    (when given) mangled admissible commands. Deterministic for a seeded ``rng``."""
    out: list[Any] = []
    for k in range(n):
        if k < len(_FIXED):
            out.append(_FIXED[k])
            continue
        kind = rng.random()
        length = rng.choice((1, 3, 10, 40, 300, 3000))
        text = "".join(rng.choice(rng.choice(_ALPHABETS)) for _ in range(length))
        if admissible and kind < 0.3:
            cmd = rng.choice(admissible)
            cut = rng.randrange(len(cmd) + 1)
            text = cmd[:cut] + text[:5] + cmd[cut:]  # a near-miss of a real command
        elif kind < 0.4:
            text = rng.choice(("search[", "click[", "#### ", "\\boxed{", "go to ", "take ")) + text
        out.append(text)
    return out


@dataclass
class FuzzReport:
    """What :func:`fuzz_env` saw: actions tried, those the env survived, and the first failures (action, error)."""

    tried: int = 0
    survived: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.tried - self.survived


_INFO_KEYS = (INFO_ADMISSIBLE, INFO_TASK_ID, INFO_TASK_TYPE, INFO_GOAL, INFO_SPLIT, INFO_WON)


def fuzz_env(env: Any, n: int, seed: int = 0, max_failures: int = 10) -> FuzzReport:
    """Step ``env`` with ``n`` hostile actions (resetting when an episode ends); each must be an ordinary step."""
    rng = random.Random(seed)
    report = FuzzReport()
    obs, info = env.reset(seed=seed)
    for action in hostile_actions(rng, n, list(info.get(INFO_ADMISSIBLE) or [])):
        report.tried += 1
        try:
            obs, reward, terminated, truncated, info = env.step(action)
            problems = [
                "observation outside the observation space" if not env.observation_space.contains(obs) else "",
                "reward is not a finite float" if not (isinstance(reward, float) and reward == reward) else "",
                f"info lacks {[k for k in _INFO_KEYS if k not in info]}" if any(k not in info for k in _INFO_KEYS) else "",
            ]
            problem = "; ".join(p for p in problems if p)
            if problem:
                raise AssertionError(problem)
            if terminated or truncated:
                obs, info = env.reset()
        except Exception as exc:  # noqa: BLE001 - the report lists what broke, and fuzzing goes on
            if len(report.failures) < max_failures:
                report.failures.append((repr(action)[:80], f"{type(exc).__name__}: {exc}"[:200]))
            obs, info = env.reset()
            continue
        report.survived += 1
    return report


def hostile_math_answers() -> list[str]:
    """Final answers that crashed the checker or kept a CAS busy for seconds (the issue #14 list, and more)."""
    matrix = lambda n, sym: "\\\\".join("&".join(f"{sym}_{{{i}{j}}}" if sym else str(7 * i + j) for j in range(n))  # noqa: E731
                                        for i in range(n))
    answers = [
        # currency and punctuation alone (IndexError in parse_number before)
        "$", "€", "£", "¥", ".", ",", "-", "+", "-$", "+€", "$.", "\\$", "$$", "%", "\\%", "$ $", "-.", "..", "/", "1/0",
        "\\text{}", "\\text{$}", "\\frac{}{}", "\\frac{1}{0}",
        # look-alike digits
        "١٨", "１８", "𝟏𝟖", "۱۸", "१८", "1８", "$１８", "-١٨", "١٨.٠", "𝟙𝟠",
        # astral and odd characters
        "🤔", "18 🤔", "𝑥+1", "\U0010ffff", "\ud800", "\x00", "\u202e81", "\u200b18", "18\u200b",
        # huge factorials, Gamma, binomials, determinants, sums, powers
        "{99999999}!", "(99999999)!", "[99999999]!", "\\left(99999999\\right)!", "99999999!", "(5!)!", "100!!",
        "\\Gamma(99999999)", "\\Gamma{99999999}", "\\Gamma\\left(99999999\\right)", "\\Gamma(10^{9})",
        "\\operatorname{Gamma}(99999999)", "\\Gamma(\\Gamma(50))",
        "\\binom{99999999}{49999999}", "\\tbinom{999999}{99999}", "\\dbinom{100000}{50000}", "{99999999 \\choose 4999999}",
        "\\binom{10^{8}}{10^{7}}", "\\binom{99!}{3}",
        "\\det\\begin{pmatrix}" + matrix(6, "a") + "\\end{pmatrix}",
        "\\det\\begin{bmatrix}" + matrix(5, "b") + "\\end{bmatrix}",
        "\\begin{vmatrix}" + matrix(5, "x") + "\\end{vmatrix}",
        "\\det\\begin{pmatrix}" + matrix(4, "c") + "\\end{pmatrix}",
        "\\begin{pmatrix}" + matrix(11, "") + "\\end{pmatrix}",
        "\\sum_{i=1}^{400} i^{400}", "\\sum_{k=0}^{99999999} k", "\\prod_{k=1}^{99999999} k",
        "10^{10^{10}}", "2^{2^{2^{2}}}", "9^{999999999}", "9**9**9", "2^2^2^2", "e^{e^{e^{9}}}",
        "10^{1000}-10^{1000}", "1e999999999", "9" * 399 + "!", "9" * 399,
        # nesting and size
        "{" * 5000, "}" * 5000, "(" * 100 + "1" + ")" * 100, "\\frac{" * 200 + "1" + "}" * 200, "\\sqrt{" * 50 + "2" + "}" * 50,
        "[" * 30 + "]" * 30, "x" * 100_000, "1," * 300, "1" * 100_000,
        # parser bait
        "\\boxed{", "\\boxed{}", "}{", "\\\\", "\\", "^", "_", "&", "\\begin{pmatrix}", "\\end{pmatrix}", "\\left(", "\\right)",
        "\\frac", "\\sqrt", "\\text{\\text{\\text{}}}", "\\mbox{x}", "\\def\\a{\\a}\\a", "\\newcommand{\\x}{\\x}\\x",
        "__import__('os').system('true')", "eval('1')", "lambda: 1", "\\input{/etc/passwd}", "\\include{x}",
        "#### 18", "18 or 20", "1,00", "1e5", "0x12", "0b10010", "19i", "nan", "inf", "-inf", "∞", "NaN",
        "\\infty^{\\infty}", "0^0", "0/0", "\\frac{0}{0}", "\\lim_{x\\to 0} \\frac{1}{x}", "\\int_0^{\\infty} e^{x^2} dx",
        "\\int_0^1 x^{399} \\sin(x^{399}) dx", "\\lfloor 10^{400} \\rfloor", "\\gcd(10^{400}, 10^{399})",
        "\\operatorname{lcm}(99999999999, 8888888888888)", "\\sqrt[400]{10^{400}}", "\\log_{2}(0)", "\\tan(\\pi/2)",
        "\\zeta(99999999)", "\\Pi", "\\pi^{400}", "x^{400} - x^{399}", "(x+1)^{400}", "(x+y+z)^{60}",
    ]
    return answers


__all__ = ["FuzzReport", "fuzz_env", "hostile_actions", "hostile_math_answers"]
