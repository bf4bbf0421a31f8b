"""The sweep's safety and stability constraints (§5.2), as data.

Each constraint is checked on a trial's full record (every searched key) before it trains; the first that
rejects it names the reason, and the trial is recorded as rejected without training or counting toward
`sweep.n_trials`. Structural infeasibility is designed away rather than rejected: grouped norms round
the channels to a multiple of their group count (`efficientnext.models.efficientnext.channel_divisor`),
and §5.2's bound on the expansion ratio is the space's own {3, 4, 5}. §5.2's optimizer-normalization
filter had one entry while rmsprop was torch's RMSprop (its first steps blew up every norm but BatchNorm);
with timm's RMSpropTF no norm diverges (benchmarks/rmsprop_norms.py), so no pair is filtered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Constraint:
    name: str
    rationale: str
    check: Check        # the full record -> what is infeasible about it, or None

    def violation(self, record: Mapping[str, Any]) -> str | None:
        found = self.check(record)
        return None if found is None else f"{self.name}: {found} ({self.rationale})"


def forbid(combination: Mapping[str, tuple[Any, ...]]) -> Check:
    """Reject a record whose every listed key has one of the listed values (all combinations of them)."""

    def check(record: Mapping[str, Any]) -> str | None:
        if all(record[key] in values for key, values in combination.items()):
            return " with ".join(f"{key}={record[key]}" for key in combination)
        return None

    return check


CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint("evonorm_own_activation",
               "§5.2 incompatible norm and activation: EvoNorm-S0 applies its own x*sigmoid(v*x) (SiLU-like) "
               "nonlinearity, so only silu is kept",
               forbid({"model.norm": ("evonorms0",), "model.activation": ("gelu", "relu")})),
)


def violation(record: Mapping[str, Any]) -> str | None:
    """The first constraint the full record breaks, as a one-line reason; None when feasible."""
    for constraint in CONSTRAINTS:
        found = constraint.violation(record)
        if found is not None:
            return found
    return None
