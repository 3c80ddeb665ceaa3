"""Which sessions happen on a day: a fixed set of planted sessions that exercise every rule, then
background traffic (mostly production models) until the day's request target is reached."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from tracedrop.pipelines.synth.clock import DAY, HOUR, MINUTE, SECOND, to_datetime
from tracedrop.pipelines.synth.plants import ALL_FACTORIES
from tracedrop.pipelines.synth.population import Person, Population
from tracedrop.pipelines.synth.prompts import MODES
from tracedrop.pipelines.synth.scenario import (
    ACME_CODER,
    ACME_FAST,
    ACME_NEXT,
    BETA_LARGE,
    BETA_MINI,
    GAMMA_CODER,
    PRODUCTION_MODELS,
    Experiment,
    Scenario,
)
from tracedrop.pipelines.synth.sessions import Delivery, PromptState, RequestRows, Segment, SessionPlan

EXPERIMENT_SHARE = 0.15  # of all requests; production traffic is the rest
EXPERIMENT_MIX = {ACME_CODER: 50, BETA_LARGE: 24, BETA_MINI: 8, GAMMA_CODER: 8, ACME_FAST: 7, ACME_NEXT: 3}
SWITCH_FROM_PRODUCTION = 0.12  # experiment sessions that began on a production model (rule 7)
SWITCH_FROM_PREVIEW = 0.04  # experiment sessions that began on another preview id (rule 7)
WRONG_CASE = 0.06
NO_SESSION_ID = 0.03
OPENER = 0.15
PLANTED_PER_REQUESTS = 2000  # the planted set repeats once per this many requests a day


@dataclass(frozen=True)
class Traffic:
    """Plans sessions for the scenario and population."""

    scenario: Scenario
    population: Population

    def _production(self, rng: random.Random, turns: int) -> Segment:
        model = rng.choices(PRODUCTION_MODELS, weights=[m.weight for m in PRODUCTION_MODELS])[0]
        return Segment(model.public_id, turns, production=model)

    def _preview(self, experiment: Experiment, turns: int, spelled: str | None = None) -> Segment:
        return Segment(spelled or experiment.public_model_id, turns, experiment=experiment)

    def planted(self, day_start_us: int, rng: random.Random, first_of_run: bool) -> list[SessionPlan]:
        """Sessions that make every rule, partner and anomaly appear on every day."""
        e = self.scenario.experiments
        pop = self.population
        acme, beta = e[ACME_CODER], e[BETA_LARGE]

        def at(hour: float, *segments: Segment, person: Person | None = None, **options: Any) -> SessionPlan:
            """A session starting a few minutes after ``hour``; one step per turn unless ``options`` say otherwise."""
            start = day_start_us + int(hour * HOUR) + rng.randint(0, 10 * MINUTE)
            plan = SessionPlan(person or pop.pick(rng), start, segments, mode=rng.choice(MODES), steps_per_turn=1)
            return replace(plan, **options)

        one = self._preview(acme, 1)
        plans = [
            at(3.1, one, person=pop.opted_out_user),  # rule 5, before and after the opt-out
            at(21.6, one, person=pop.opted_out_user),
            at(4.3, one, person=pop.opted_out_machine_user),
            at(19.0, one, person=pop.opted_out_machine_anon),
            at(9.0, self._preview(acme, 2), person=pop.anon_ip_only, steps_per_turn=None),  # allocated by ip
            at(2.0, self._preview(beta, 1)),  # before beta-large started (day 0) / exported later
            at(3.5, self._preview(e[BETA_MINI], 1)),  # beta-mini completes half-way: rule 4 afterwards
            at(20.5, self._preview(e[BETA_MINI], 1)),
            at(11.0, self._preview(e[ACME_NEXT], 1)),  # draft: rule 4
            at(12.0, self._preview(e[GAMMA_CODER], 2), steps_per_turn=None),  # non-eval partner: rule 2
            at(13.0, one, rows=RequestRows.MISSING),  # rule 1
            at(13.1, one, rows=RequestRows.DUPLICATE),
            at(13.2, one, rows=RequestRows.SHIFTED),
            at(13.3, one, unknown_version=True),  # rule 2
            at(13.4, self._preview(acme, 1, "preview/acme-coder-max")),  # rule 3
            at(13.5, one, prompt=PromptState.FAILED),  # rule 6
            at(13.6, one, prompt=PromptState.DELETED),
            at(13.7, one, prompt=PromptState.LOST),
            at(14.0, self._production(rng, 1), self._preview(acme, 2), steps_per_turn=2),  # rule 7
            at(15.0, self._preview(acme, 1), self._preview(beta, 1), steps_per_turn=2),
            at(16.0, self._preview(acme, 1, "Preview/Acme-Coder"), steps_per_turn=2),  # rule 3 is case-blind
            at(16.5, self._preview(acme, 1), has_session_id=False, steps_per_turn=2),
            at(13.8, one, delivery=Delivery.TWICE),  # doubt excludes: an identical extra copy
            at(13.85, one, delivery=Delivery.CONFLICTING),  # two differing copies of one usage id
            at(13.9, one, delivery=Delivery.BROKEN_REQUEST_LINE),  # a quarantined line names its usage id
            at(13.95, self._preview(acme, 2), delivery=Delivery.BROKEN_SESSION_LINE),  # ... or its session
            at(8.0, one, opener=True, mode="code"),  # identical /init bodies: content addressing dedups
            at(8.5, one, opener=True, mode="code"),
        ]
        if self.scenario.experiments[ACME_FAST].serves_at(to_datetime(day_start_us + HOUR)):
            plans.append(at(1.0, self._preview(e[ACME_FAST], 1)))
        if first_of_run:
            plans.append(at(17.0, one, huge=True))  # the one truncated body of the run
            plans.append(at(18.0, one, showcase=ALL_FACTORIES))  # every kind of secret and look-alike
        return plans

    def background(self, day_start_us: int, rng: random.Random, experiment_share: float) -> SessionPlan:
        """A random session: production most of the time, else a preview id (sometimes after a switch)."""
        start = day_start_us + int(rng.betavariate(2.2, 1.8) * (DAY - SECOND))  # busier in the afternoon
        turns = 1 + min(int(rng.expovariate(0.7)), 7)
        person = self.population.pick(rng)
        plan = SessionPlan(
            person,
            start,
            (self._production(rng, turns),),
            mode=rng.choice(MODES),
            has_session_id=rng.random() >= NO_SESSION_ID,
            opener=rng.random() < OPENER,
        )
        if rng.random() >= experiment_share:
            return plan
        experiment = self._pick_experiment(rng, start)
        spelled = experiment.public_model_id.title() if rng.random() < WRONG_CASE else None
        segments = [self._preview(experiment, turns, spelled)]
        switch = rng.random()
        if switch < SWITCH_FROM_PRODUCTION:
            segments.insert(0, self._production(rng, 1 + rng.randrange(2)))
        elif switch < SWITCH_FROM_PRODUCTION + SWITCH_FROM_PREVIEW:
            segments.insert(0, self._preview(self._pick_experiment(rng, start), 1))
        return replace(plan, segments=tuple(segments))

    def _pick_experiment(self, rng: random.Random, start_us: int) -> Experiment:
        live = [(self.scenario.experiments[i], w) for i, w in EXPERIMENT_MIX.items()]
        live = [(x, w) for x, w in live if x.serves_at(to_datetime(start_us))]
        return rng.choices([x for x, _ in live], weights=[w for _, w in live])[0]


def background_share(target: int, planted_requests: int, planted_experiment_requests: int) -> float:
    """The experiment share of background sessions that brings the day's total near EXPERIMENT_SHARE."""
    wanted = EXPERIMENT_SHARE * target - planted_experiment_requests
    return min(EXPERIMENT_SHARE, max(0.02, wanted / max(1, target - planted_requests)))
