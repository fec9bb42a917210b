"""The scrape loop's round: scrape every target, keep sliding windows, judge, store and report."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.repository import Database, monitor_store
from services.monitor.adapters.scraper import ScrapeError, Scraper
from services.monitor.domain.cost import server_per_hour
from services.monitor.domain.fleet import Target, next_failures
from services.monitor.domain.rounds import TargetRound, alert_observations, cost_per_hour_by_region, signal_inputs
from services.monitor.domain.triton_metrics import ServerSample, parse_triton_metrics
from services.monitor.domain.windows import aggregate, slide
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases import server_reports
from services.monitor.use_cases.judging import Verdict, judge, rules_in_force
from shared.events import ServerMetricsReported

log = logging.getLogger(__name__)

Publish = Callable[[list[ServerMetricsReported]], Awaitable[None]]


class Collector:
    """Holds each target's recent samples (the sliding windows) between rounds."""

    def __init__(
        self,
        sessions: Database,
        settings: MonitorSettings,
        scraper: Scraper,
        metrics: MonitorMetrics,
        publish: Publish,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = monitor_store(sessions)
        self._settings = settings
        self._scraper = scraper
        self._metrics = metrics
        self._publish = publish
        self._clock = clock
        self._histories: dict[str, tuple[ServerSample, ...]] = {}
        self._last_report: datetime | None = None

    async def run_round(self) -> Verdict:
        """One round over every known target; returns the alerts and signals it queued."""
        started, now = time.perf_counter(), self._clock()
        async with self._store.transaction() as repo:
            targets = await repo.load_targets()
            prices = await repo.load_prices()
            latest = await repo.latest_demand(now - timedelta(seconds=self._settings.window_s))
        fetched = await self._scraper.fetch_all((t.server_id, t.metrics_url) for t in targets)
        rounds = [self._advance(t, fetched[t.server_id], now) for t in targets]
        self._histories = {t.server_id: self._histories[t.server_id] for t in targets if t.server_id in self._histories}
        per_server = {t.server_id: server_per_hour(t.cost(), prices) for t in targets}
        report = (
            self._last_report is None or (now - self._last_report).total_seconds() >= self._settings.report_interval_s
        )
        async with self._store.transaction() as repo:
            await repo.record_scrapes(
                {r.target.server_id: r.failures for r in rounds},
                {r.target.server_id: r.error for r in rounds},
                now,
            )
            if report:
                await repo.store_windows(rounds, per_server, now)
            rules = await rules_in_force(repo, self._settings)
            verdict = await judge(
                repo, rules, alert_observations(rounds), now, self._settings.service_name,
                signal_inputs(rounds), self._settings.signal_cooldown_s,
            )  # fmt: skip
            firing = await repo.firing_counts()
        if report:
            self._last_report = now
            if self._settings.publish_server_metrics:
                await self._publish(server_reports.server_events(rounds, latest, self._settings, now))
        self._export(rounds, targets, per_server, firing, verdict, time.perf_counter() - started)
        return verdict

    def _advance(self, target: Target, fetched: str | ScrapeError, now: datetime) -> TargetRound:
        """Fold one scrape into the target's window; a failed one counts towards target-down."""
        if isinstance(fetched, ScrapeError):
            return TargetRound(target, next_failures(target.consecutive_failures, False), (), str(fetched))
        try:
            sample = parse_triton_metrics(fetched, now.timestamp())
        except ValueError as error:
            return TargetRound(target, next_failures(target.consecutive_failures, False), (), f"unparsable: {error}")
        history = slide(self._histories.get(target.server_id, ()), sample, self._settings.window_s)
        self._histories[target.server_id] = history
        return TargetRound(target, 0, aggregate(history))

    def _export(
        self,
        rounds: list[TargetRound],
        targets: list[Target],
        per_server: dict[str, float],
        firing: dict[tuple[str, str], int],
        verdict: Verdict,
        seconds: float,
    ) -> None:
        m = self._metrics
        m.scrape_duration.observe(seconds)
        down = sum(1 for r in rounds if r.failures >= self._settings.target_down_after)
        m.scrape_targets.labels("up").set(len(rounds) - down)
        m.scrape_targets.labels("down").set(down)
        m.gpu_utilization.clear()
        m.queue_depth.clear()
        for r in rounds:
            for w in r.windows[:1]:
                m.gpu_utilization.labels(r.target.server_id, r.target.region, r.target.gpu_type).set(w.utilization)
                m.queue_depth.labels(r.target.server_id).set(w.queue_depth)
        m.cost_per_hour.clear()
        for region, total in cost_per_hour_by_region(targets, per_server).items():
            m.cost_per_hour.labels(region).set(total)
        m.set_firing(firing)
        for alert in verdict.alerts:
            m.alert_changes.labels(alert.rule, alert.state.value).inc()
        for signal in verdict.signals:
            m.signals.labels(signal.kind.value).inc()
