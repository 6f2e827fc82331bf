"""How a target's figure is printed: the figure, its target, PASS/MISS, and the ratios behind it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figure:
    """One target's result. ``judged`` is False in quick runs (small sizes, not a measurement)."""

    number: int
    title: str
    figure: str
    target: str
    passed: bool
    judged: bool = True
    why_not_judged: str = "quick run: small sizes, speed not judged"
    details: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        word = "PASS" if self.passed else "MISS"
        return word if self.judged else f"{word.lower()} (not judged: {self.why_not_judged})"

    def lines(self) -> list[str]:
        head = (
            f"[{self.number}] {self.title}: {self.figure} | target {self.target} | {self.verdict}"
        )
        return [head, *(f"    {detail}" for detail in self.details)]


def crashed(number: int, title: str, error: BaseException) -> Figure:
    return Figure(
        number,
        title,
        "CRASH",
        "-",
        False,
        details=[f"{type(error).__name__}: {error}"],
    )


def rate(value: float) -> str:
    return f"{value:,.0f}"


def seconds(value: float) -> str:
    return f"{value:.2f} s"
