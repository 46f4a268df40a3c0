"""Answer extraction and checking: equivalence tables, guards, the bounded math-verify worker, any-thread use."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest

from oreo_agents.envs.math.answers import (
    check_answer,
    extract_final_answer,
    is_pathological,
    last_boxed,
    math_verify_equal,
    parse_number,
)

# (predicted, reference): equal under the GSM8K strict numeric check
GSM8K_EQUAL = [
    ("1,000", "1000"),
    ("$18", "18"),
    ("\\$18.00", "18"),
    ("0.50", "0.5"),
    (".5", "0.5"),
    ("18 dollars", "18"),
    ("5 apples.", "5"),
    ("50%", "50"),
    ("$1,234.50", "1234.5"),
    ("-5", "-5"),
    ("-$5", "-5"),
    ("+7", "7"),
    ("3/4", "0.75"),
    ("\\frac{3}{4}", "0.75"),
    ("72", "72"),
    ("1,000,000", "1000000"),
    (" 42 ", "42"),
    ("$42$", "42"),
    ("10 cm", "10"),
]
GSM8K_DIFFERENT = [
    ("17", "18"),
    ("18.01", "18"),
    ("-18", "18"),
    ("18 or 20", "18"),
    ("1,00", "100"),  # bad thousands grouping is not a number
    ("1e3", "1000"),  # no exponents (1e999999999 would build a huge integer)
    ("0.5", "50%"),  # GSM8K's % is a unit: 50% means 50
    ("eighteen", "18"),
    ("", "18"),
    ("x = 18", "18"),  # strict: exactly one number
    ("18/0", "18"),
    ("1/2", "2"),
]
# (predicted, reference): equal for "boxed" (MATH) answers, through math-verify
BOXED_EQUAL = [
    ("\\frac{1}{2}", "0.5"),
    ("0.5", "\\frac12"),
    ("\\dfrac{1}{2}", "\\frac12"),
    ("1/2", "\\frac{1}{2}"),
    ("50\\%", "\\frac{1}{2}"),
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt2/2"),
    ("\\sqrt{50}", "5\\sqrt{2}"),
    ("x=3", "3"),
    ("(1, 2)", "(1,2)"),
    ("10 \\text{ cm}", "10"),
    ("1,000", "1000"),
    ("\\$18", "18"),
    ("\\frac{\\pi}{2}", "\\pi/2"),
    ("\\infty", "\\infty"),
    ("- 3", "-3"),
    ("2x+1", "1+2x"),
]
BOXED_DIFFERENT = [
    ("[0,1]", "[0,1)"),
    ("3.14159", "\\pi"),
    ("3", "2"),
    ("0.33", "\\frac{1}{3}"),
    ("x^3", "x^2"),
    ("2", "\\sqrt{2}"),
    ("(2,1)", "(1,2)"),
    ("", "2"),
]


@pytest.mark.parametrize("predicted,reference", GSM8K_EQUAL)
def test_gsm8k_equal(predicted, reference):
    assert check_answer(predicted, reference, "gsm8k")


@pytest.mark.parametrize("predicted,reference", GSM8K_DIFFERENT)
def test_gsm8k_different(predicted, reference):
    assert not check_answer(predicted, reference, "gsm8k")


def test_gsm8k_non_numeric_reference_compares_normalized_strings():
    assert check_answer("  Blue. ", "blue", "gsm8k")
    assert not check_answer("red", "blue", "gsm8k")


@pytest.mark.parametrize("predicted,reference", BOXED_EQUAL)
def test_boxed_equal(predicted, reference):
    assert check_answer(predicted, reference, "boxed")


@pytest.mark.parametrize("predicted,reference", BOXED_DIFFERENT)
def test_boxed_different(predicted, reference):
    assert not check_answer(predicted, reference, "boxed")


def test_parse_number():
    assert parse_number("$1,000.50") == Fraction(2001, 2)
    assert parse_number("-0.25") == Fraction(-1, 4)
    assert parse_number("12 or 13") is None
    assert parse_number("1e999999999") is None


@pytest.mark.parametrize(
    "step,fmt,expected",
    [
        ("#### 72", "gsm8k", "72"),
        ("So she pays 3 * 6 = 18 dollars. #### $1,000", "gsm8k", "$1,000"),
        ("####", "gsm8k", ""),
        ("Natalia sold 72 clips.", "gsm8k", None),
        ("The answer is \\boxed{5}.", "gsm8k", None),  # a box is not a final answer for GSM8K sources
        ("The answer is \\boxed{\\frac{1}{2}}.", "boxed", "\\frac{1}{2}"),
        ("\\boxed{1} or rather \\boxed{\\{2, 3\\}}", "boxed", "\\{2, 3\\}"),
        ("\\fbox{7}", "boxed", "7"),
        ("so \\boxed{\\frac{1}{2}", "boxed", ""),  # unclosed: malformed, still final
        ("#### \\frac{1}{2}", "boxed", "\\frac{1}{2}"),
        ("We add 2 and 3.", "boxed", None),
    ],
)
def test_extract_final_answer(step, fmt, expected):
    assert extract_final_answer(step, fmt) == expected


def test_last_boxed_matches_nested_braces():
    assert last_boxed("x \\boxed{\\frac{a}{b^{2}}} y") == "\\frac{a}{b^{2}}"
    assert last_boxed("no box") is None


@pytest.mark.parametrize(
    "text,bad",
    [
        ("2^{10}", False),
        ("\\frac{1}{2}", False),
        ("x^2 + 3x - 4", False),
        ("5!", False),
        ("10^{10^{10}}", True),
        ("2^2^2", True),
        ("9^{99999}", True),
        ("9**99999", True),
        ("1000!", True),
        ("(5!)!", True),
        ("{" * 20 + "1" + "}" * 20, True),
        ("1" * 1000, True),
    ],
)
def test_is_pathological(text, bad):
    assert is_pathological(text) is bad


ADVERSARIAL = [
    "10^{10^{10}}",
    "2^{2^{2^{2^{2^{2}}}}}",
    "9^{999999999}",
    "9**9**9**9",
    "99999999!",
    "((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))",
    "\\frac{" * 200 + "1" + "}" * 200,
    "{" * 5000,
    "1e999999999",
    "x" * 1_000_000,
    "\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{2}}}}}}}}}}}}}",
    "\x00\x01\x02 garbage \\\\ }{ ][ ^^ $$ \\boxed{",
    "10^{1000}-10^{1000}+\\frac{10^{300}}{10^{299}}",
    "5 " + "a" * 300 + "1",  # a letter run that is no unit: once backtracked exponentially in the unit stripper
    "5" + " ab." * 90 + "!",
]


@pytest.mark.parametrize("answer", ADVERSARIAL)
@pytest.mark.parametrize("fmt", ["gsm8k", "boxed"])
def test_adversarial_answers_score_zero_in_bounded_time(answer, fmt):
    start = time.monotonic()
    assert check_answer(answer, "1", fmt, timeout=2) is False
    assert time.monotonic() - start < 10  # worker start (first call) + at most one timeout


@pytest.mark.parametrize("text", ["5 " + "a" * 390 + "1", "5" + " a" * 195 + "!", "5 " + "a." * 195 + "1", "7" + "kg" * 190 + "7"])
def test_strict_parsing_runs_in_linear_time_on_letter_runs(text):
    # parse_number runs in the env's own process (no worker to kill), so it must be fast on any text by construction.
    start = time.monotonic()
    assert parse_number(text) is None
    assert time.monotonic() - start < 0.5


def test_answer_text_is_never_evaluated_as_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for fmt in ("gsm8k", "boxed"):
        assert not check_answer(payload, "0", fmt)
        assert not check_answer(f"\\text{{{payload}}}", "0", fmt)
    assert not marker.exists()


def test_math_verify_timeout_returns_none_and_worker_recovers():
    assert math_verify_equal("\\frac{2}{4}", "0.5") is True  # warm the worker
    start = time.monotonic()
    assert math_verify_equal("10^{10^{10}}", "1", timeout=1) is None  # math-verify's own alarm, in the worker
    assert time.monotonic() - start < 5
    # below one second the worker's whole-second alarm is too late: our backstop kills the process
    assert math_verify_equal("\\sqrt{4}", "2") is True  # a timed-out worker is replaced: warm the new one first
    start = time.monotonic()
    assert math_verify_equal("10^{10^{10}}", "1", timeout=0.3) is None
    assert time.monotonic() - start < 3
    assert math_verify_equal("\\sqrt{4}", "2") is True  # a fresh worker answers again


def test_checking_works_off_the_main_thread():
    results: dict[str, object] = {}

    def run():
        results["equal"] = check_answer("\\dfrac{3}{6}", "\\frac{1}{2}", "boxed")
        results["different"] = check_answer("\\frac{1}{3}", "\\frac{1}{2}", "boxed")
        results["timeout"] = math_verify_equal("10^{10^{10}}", "1", timeout=1)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert results == {"equal": True, "different": False, "timeout": None}


def test_concurrent_checks_from_many_threads():
    pairs = [("\\frac{1}{2}", "0.5", True), ("\\sqrt{8}", "2\\sqrt2", True), ("x+1", "x+2", False)] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda p: check_answer(p[0], p[1], "boxed"), pairs))
    assert got == [p[2] for p in pairs]


# --- issue #14 item 2: hostile answers that crashed the check or burned the whole verify budget ------------------------
@pytest.mark.parametrize("answer", ["$", "€", ".", "-$", "+", "-", "$.", "\\$", "-€", "%", ",", "$ $", "\\text{}"])
@pytest.mark.parametrize("fmt", ["gsm8k", "boxed"])
def test_bare_punctuation_and_currency_are_wrong_not_a_crash(answer, fmt):
    assert check_answer(answer, "18", fmt, timeout=2) is False  # IndexError in parse_number before the fix


def test_parse_number_of_punctuation_is_none():
    for text in ("$", "€", ".", "-$", "+"):
        assert parse_number(text) is None


@pytest.mark.parametrize("answer", ["١٨", "１８", "𝟏𝟖", "$１８", "1８"])
@pytest.mark.parametrize("fmt", ["gsm8k", "boxed"])
def test_non_ascii_digits_are_not_numbers(answer, fmt):
    # Decided: ASCII digits only (module doc). Before, all of these scored equal to 18.
    assert check_answer(answer, "18", fmt, timeout=2) is False
    assert check_answer("18", "18", fmt) is True


COSTLY = [
    "{99999999}!",
    "(99999999)!",
    "\\left(99999999\\right)!",
    "\\Gamma(99999999)",
    "\\Gamma{99999999}",
    "\\Gamma\\left(99999999\\right)",
    "\\Gamma(10^{9})",
    "\\binom{99999999}{49999999}",
    "\\tbinom{999999}{99999}",
    "{99999999 \\choose 49999999}",
    "\\det\\begin{pmatrix}" + "\\\\".join("&".join(f"a_{{{i}{j}}}" for j in range(6)) for i in range(6)) + "\\end{pmatrix}",
    "\\begin{vmatrix}" + "\\\\".join("&".join(f"x_{{{i}{j}}}" for j in range(5)) for i in range(5)) + "\\end{vmatrix}",
    "\\sum_{i=1}^{400} i^{400}",
]


@pytest.mark.parametrize("answer", COSTLY)
def test_costly_cas_inputs_are_pre_filtered(answer):
    assert is_pathological(answer)
    start = time.monotonic()
    assert check_answer(answer, "18", "boxed", timeout=5) is False
    assert time.monotonic() - start < 1  # decided by the filter: math-verify would have run the full 5 s


@pytest.mark.parametrize("answer", ["5!", "{5}!", "(5)!", "\\Gamma(5)", "\\Gamma(x)", "\\binom{10}{3}", "{10 \\choose 3}",
                                    "\\det\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\sum_{i=1}^{10} i"])
def test_small_instances_of_those_functions_pass_the_filter(answer):
    assert not is_pathological(answer)


def test_small_factorials_and_binomials_still_check():
    assert check_answer("{5}!", "120", "boxed") is True
    assert check_answer("\\binom{10}{3}", "120", "boxed") is True


def test_check_answer_never_raises_on_an_internal_error(monkeypatch):
    import oreo_agents.envs.math.answers as answers

    def boom(*_):
        raise IndexError("a parser bug")

    monkeypatch.setattr(answers, "parse_number", boom)
    with pytest.warns(UserWarning, match="IndexError"):
        assert check_answer("18", "18", "gsm8k") is False
    with pytest.raises(ValueError, match="unknown answer format"):
        check_answer("18", "18", "nope")


@pytest.mark.parametrize("answer", ["\\Gamma(\\Gamma(50))", "(x+1)^{400}", "(x+y+z)^{60}", "\\int_0^1 x^{399} \\sin(x^{399}) dx"])
def test_big_symbolic_powers_and_nested_gamma_are_pre_filtered(answer):
    assert is_pathological(answer)


@pytest.mark.parametrize("answer", ["(x+1)^{2}", "\\left(\\frac{1}{2}\\right)^{31}", "\\int_0^1 x^2 dx", "(2)^{40}"])
def test_ordinary_powers_pass_the_filter(answer):
    assert not is_pathological(answer)
