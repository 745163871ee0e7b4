"""Options that have an effect only in some context, in one table, checked before a command runs.

``--epochs`` does nothing without ``--train``, ``--max-accuracy-drop`` nothing without
``--sparsity auto``, ``--address`` nothing with the local engine, and so on. Accepting such an
option silently lets a user believe it acted, so :func:`check_context` refuses it as a usage
error (exit 2) saying what it needs. Each such option is parsed with no default (``None``: not
given); :func:`check_context` fills in its default once the rule holds. A new option of this
kind is one more row of :data:`RULES`.

No TVM here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from eiec.errors import UsageError


def _given(dest: str) -> Callable[[argparse.Namespace], bool]:
    """The option ``dest`` was given (parsed with no default: not None and not False)."""
    return lambda args: getattr(args, dest) not in (None, False)


def _auto(args: argparse.Namespace) -> bool:
    return args.sparsity[0] == "auto"


def _ray_with_address(args: argparse.Namespace) -> bool:
    return args.engine == "ray" and args.address is not None


@dataclass(frozen=True)
class Needs:
    """``flag`` (the option whose value is ``dest``) has an effect only when ``holds``; without
    it, ``context`` says when it has none and ``fix`` how to give it an effect, ``instead``
    what to give in its place (by default: leave it out). ``default`` is the value when it is
    not given; ``given`` whether it is (by default: not None)."""

    dest: str
    flag: str
    context: str
    fix: str
    holds: Callable[[argparse.Namespace], bool]
    default: object = None
    given: Callable[[argparse.Namespace], bool] | None = None
    instead: str | None = None


#: Every option that has an effect only in some context.
RULES: tuple[Needs, ...] = (
    Needs("validation", "--validation", "without --train", "add --train DATA.npz",
          _given("train")),
    Needs("epochs", "--epochs", "without --train", "add --train DATA.npz", _given("train"), 10),
    Needs("seed", "--seed", "without --train", "add --train DATA.npz", _given("train"), 0),
    Needs("distill", "--distill", "without --train", "add --train DATA.npz", _given("train")),
    Needs("sparsity", "--sparsity auto", "without --train",
          "auto picks each layer's sparsity by training: add --train DATA.npz", _given("train"),
          given=_auto, instead="give --sparsity S"),
    Needs("max_accuracy_drop", "--max-accuracy-drop", "without --sparsity auto",
          "add --sparsity auto --train DATA.npz", _auto, 0.5),
    Needs("input_range", "--input-range", "with --calibration",
          "the calibration samples set the formats; give one of the two",
          lambda args: args.calibration is None),
    Needs("address", "--address", "with --engine local", "add --engine ray",
          lambda args: args.engine == "ray"),
    Needs("workers", "--workers", "with --engine ray --address (the cluster has its own CPUs)",
          "size the cluster instead",
          # eiec run: the number of shards of the samples, wherever they run
          lambda args: not _ray_with_address(args) or args.command == "run"),
)  # fmt: skip


def check_context(args: argparse.Namespace) -> None:
    """Raise UsageError for the first option of :data:`RULES` that ``args`` gives where it has
    no effect; then give every rule's option that was not given its default."""
    for rule in RULES:
        if not hasattr(args, rule.dest):
            continue
        given = rule.given(args) if rule.given else getattr(args, rule.dest) is not None
        if given and not rule.holds(args):
            raise UsageError(
                f"{rule.flag} has no effect {rule.context}",
                fix=f"{rule.fix}, or {rule.instead or 'leave out ' + rule.flag}",
            )
    for rule in RULES:
        if hasattr(args, rule.dest) and getattr(args, rule.dest) is None:
            setattr(args, rule.dest, rule.default)
