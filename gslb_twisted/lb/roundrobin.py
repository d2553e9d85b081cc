"""
Smooth weighted round robin: the order in which a vserver's services take
turns, and the answers (sets of distinct services) that order yields.

Everything here is pure except L{Rotation}, a counter that says where in the
cycle the next answer starts.

Why not nginx's algorithm verbatim: nginx's smooth WRR interleaves within one
cycle, but for weights 2,1,1 its cycle is A,B,C,A, which repeated serves A
twice in a row (A,B,C,A,A,B,C,A...), the very burst smoothing is meant to
avoid.  Here every service's turns are spread evenly over the cycle and the
services start at evenly spread phases, so 2,1,1 gives A,B,A,C and repeats
without a burst.
"""

from __future__ import annotations

from functools import reduce
from math import gcd
from typing import Sequence


def smoothWeightedOrder(weights: Sequence[int]) -> tuple[int, ...]:
    """
    The cyclic order of turns for services with these weights.

    Each index appears exactly C{weights[i] / g} times per cycle, where C{g}
    is the greatest common divisor of the weights (scaling every weight by
    the same factor does not change the proportions, only the cycle length).
    Service C{i}'s turns are due at virtual times C{(k + i / n) / w_i} for
    C{k = 0 .. w_i - 1}: evenly spaced for each service, and phase-shifted
    per service so that equal weights alternate instead of colliding.  Ties
    go to the lower index.

    @param weights: positive integer weights; index C{i} is service C{i}.
    @return: indices into C{weights}, one cycle; empty for no weights.
    @raise ValueError: if a weight is not a positive integer.
    """
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"weights must be positive integers, got {weight!r}")
    if not weights:
        return ()
    common = reduce(gcd, weights)
    count = len(weights)
    turns = []
    for index, weight in enumerate(weights):
        turnsPerCycle = weight // common
        denominator = turnsPerCycle * count
        for k in range(turnsPerCycle):
            # A float of the exact due time: denominators stay far below
            # 2**26, so distinct fractions give distinct floats and equal
            # ones equal floats (what Fraction would give, 10x faster).
            turns.append(((k * count + index) / denominator, index))
    turns.sort()
    return tuple(index for _, index in turns)


def distinctFrom(order: Sequence[int], start: int, count: int) -> tuple[int, ...]:
    """
    Up to C{count} distinct indices, taken from C{order} (read cyclically)
    beginning at position C{start}.  Fewer when C{order} holds fewer distinct
    indices.
    """
    chosen: list[int] = []
    length = len(order)
    for step in range(length):
        if len(chosen) == count:
            break
        index = order[(start + step) % length]
        if index not in chosen:
            chosen.append(index)
    return tuple(chosen)


def answerSets(order: Sequence[int], count: int) -> tuple[tuple[int, ...], ...]:
    """
    The answer given at each position of the rotation: C{count} distinct
    indices starting there (see L{distinctFrom}).  One entry per position of
    C{order}, so a rotation counter indexes it directly.
    """
    return tuple(distinctFrom(order, start, count) for start in range(len(order)))


class Rotation:
    """
    Where a cycle of C{length} positions is: L{advance} returns the current
    position and moves to the next, wrapping around.
    """

    __slots__ = ("length", "position")

    def __init__(self, length: int, position: int = 0) -> None:
        if length < 1:
            raise ValueError(f"a rotation needs at least one position, got {length}")
        self.length = length
        self.position = position % length

    def advance(self) -> int:
        position = self.position
        following = position + 1
        self.position = 0 if following == self.length else following
        return position

    def __repr__(self) -> str:
        return f"<Rotation {self.position}/{self.length}>"
