"""
Tests for L{gslb_twisted.lb.roundrobin}: smooth weighted round robin.
"""

from collections import Counter
from functools import reduce
from math import gcd

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gslb_twisted.lb.roundrobin import Rotation, answerSets, distinctFrom, smoothWeightedOrder

deterministic = settings(derandomize=True, deadline=None, database=None, max_examples=200)
weightLists = st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=12)


def longestCyclicRun(order):
    """The longest run of one index in C{order} read as a cycle."""
    if len(set(order)) == 1:
        return len(order)
    doubled = list(order) * 2
    longest = run = 1
    for previous, current in zip(doubled, doubled[1:]):
        run = run + 1 if current == previous else 1
        longest = max(longest, run)
    return longest


class SmoothWeightedOrderTests(SynchronousTestCase):
    def test_interleaved(self):
        """
        Weights 2,1,1 give A,B,A,C: the heavy service's turns are spread out,
        not bunched as A,A,B,C, and stay apart when the cycle repeats.
        """
        self.assertEqual(smoothWeightedOrder([2, 1, 1]), (0, 1, 0, 2))

    def test_equalWeightsAlternate(self):
        self.assertEqual(smoothWeightedOrder([1, 1, 1]), (0, 1, 2))
        self.assertEqual(smoothWeightedOrder([3, 3]), (0, 1))

    def test_heavyService(self):
        """
        5,1,1: the five turns of A cannot all be apart, but no run of A is
        longer than three, counting across the wrap.
        """
        order = smoothWeightedOrder([5, 1, 1])
        self.assertEqual(Counter(order), {0: 5, 1: 1, 2: 1})
        self.assertEqual(longestCyclicRun(order), 3)

    def test_singleService(self):
        self.assertEqual(smoothWeightedOrder([7]), (0,))

    def test_noServices(self):
        self.assertEqual(smoothWeightedOrder([]), ())

    def test_badWeights(self):
        for weights in ([0], [1, -2], [1.5], [True]):
            self.assertRaises(ValueError, smoothWeightedOrder, weights)

    @deterministic
    @given(weightLists)
    def test_proportions(self, weights):
        """
        Over one cycle each service gets turns in proportion to its weight;
        the cycle is as short as the proportions allow.
        """
        order = smoothWeightedOrder(weights)
        common = reduce(gcd, weights)
        self.assertEqual(Counter(order), {i: w // common for i, w in enumerate(weights)})
        self.assertEqual(len(order), sum(weights) // common)

    @deterministic
    @given(weightLists, st.integers(min_value=2, max_value=5))
    def test_scaleInvariant(self, weights, factor):
        self.assertEqual(smoothWeightedOrder(weights), smoothWeightedOrder([w * factor for w in weights]))

    @deterministic
    @given(st.lists(st.integers(min_value=1, max_value=20), min_size=2, max_size=8))
    def test_smooth(self, weights):
        """
        The heaviest service never runs longer than its share demands: with
        C{h} turns against C{r} turns of the others, runs of at most
        ceil(h / r) + 1 (evenly spread would be ceil(h / r)).
        """
        order = smoothWeightedOrder(weights)
        common = reduce(gcd, weights)
        heaviest = max(weights) // common
        others = len(order) - heaviest
        bound = -(-heaviest // others) + 1
        self.assertLessEqual(longestCyclicRun(order), bound)


class AnswerSetTests(SynchronousTestCase):
    def test_distinctFromPosition(self):
        order = smoothWeightedOrder([2, 1, 1])  # A,B,A,C
        self.assertEqual(distinctFrom(order, 0, 2), (0, 1))
        self.assertEqual(distinctFrom(order, 1, 2), (1, 0))
        self.assertEqual(distinctFrom(order, 2, 2), (0, 2))
        self.assertEqual(distinctFrom(order, 3, 2), (2, 0))

    def test_fewerThanAsked(self):
        """Asking for more addresses than services gives every service once."""
        self.assertEqual(distinctFrom((0, 1, 0, 2), 1, 5), (1, 0, 2))
        self.assertEqual(distinctFrom((0,), 0, 3), (0,))

    def test_onePerPosition(self):
        order = smoothWeightedOrder([1, 1, 1])
        self.assertEqual(answerSets(order, 2), ((0, 1), (1, 2), (2, 0)))

    @deterministic
    @given(weightLists, st.integers(min_value=1, max_value=16))
    def test_distinct(self, weights, count):
        """Every answer holds min(count, services) distinct services."""
        for chosen in answerSets(smoothWeightedOrder(weights), count):
            self.assertEqual(len(set(chosen)), len(chosen))
            self.assertEqual(len(chosen), min(count, len(weights)))

    @deterministic
    @given(weightLists)
    def test_firstFollowsOrder(self, weights):
        """The first address of each answer is the rotation's turn."""
        order = smoothWeightedOrder(weights)
        self.assertEqual(tuple(chosen[0] for chosen in answerSets(order, 3)), order)


class RotationTests(SynchronousTestCase):
    def test_advanceWraps(self):
        rotation = Rotation(3)
        self.assertEqual([rotation.advance() for _ in range(7)], [0, 1, 2, 0, 1, 2, 0])

    def test_startPosition(self):
        rotation = Rotation(4, position=6)
        self.assertEqual(rotation.advance(), 2)
        self.assertEqual(rotation.position, 3)

    def test_single(self):
        rotation = Rotation(1)
        self.assertEqual([rotation.advance() for _ in range(3)], [0, 0, 0])

    def test_empty(self):
        self.assertRaises(ValueError, Rotation, 0)
