"""Simulation: what every TV would do with this schedule and these outages.

A scenario file is a schedule (or names one) with a simulated span, things
that happen (clients disconnect, reconnect or join; the publisher or the
broker restarts; events are cancelled, edited or added) and what to expect.
:func:`run_scenario` runs the real publisher against a real embedded broker
on a stepped clock, with simulated clients behind a real subscriber, and
checks the run.

The parts: :mod:`~tvpower.sim.scenario` reads scenario files,
:mod:`~tvpower.sim.fleet` simulates the clients, :mod:`~tvpower.sim.run`
drives a run, :mod:`~tvpower.sim.verify` checks it,
:mod:`~tvpower.sim.tables` summarizes runs and writes their tables,
:mod:`~tvpower.sim.whatif` asks the engine what a change of the schedule
would change;
``python -m tvpower.sim`` is the entry point.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tvpower.sim.run import record
from tvpower.sim.scenario import Scenario, load_scenario
from tvpower.sim.tables import summarize, write_tables
from tvpower.sim.verify import verify
from tvpower.sim.whatif import WhatIf, what_if

__all__ = [
    "Scenario",
    "SimResult",
    "WhatIf",
    "load_scenario",
    "run_scenario",
    "simulate",
    "summarize",
    "what_if",
    "write_tables",
]


@dataclass(frozen=True)
class SimResult:
    """The outcome of one scenario: three DataFrames and a summary.

    ``received``: every intent each client received; ``power``: each TV's
    power, one row per stretch; ``violations``: one row per failed check
    (columns ``check``, ``client_id``, ``at``, ``detail``).
    """

    scenario: str
    clients: int
    received: pd.DataFrame
    power: pd.DataFrame
    violations: pd.DataFrame
    seconds: float

    @property
    def passed(self) -> bool:
        return self.violations.empty


async def simulate(scenario: str | Path | Scenario) -> SimResult:
    """Run a scenario (a file, or one loaded) in the running event loop; check it."""
    began = time.monotonic()
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    recording = await record(scenario)
    verdict = verify(recording)
    return SimResult(
        scenario=scenario.name,
        clients=len(scenario.schedule.clients),
        received=verdict.received,
        power=verdict.power,
        violations=verdict.violations,
        seconds=time.monotonic() - began,
    )


def run_scenario(scenario: str | Path | Scenario) -> SimResult:
    """Run a scenario (a file, or one loaded) in an event loop of its own."""
    return asyncio.run(simulate(scenario))
