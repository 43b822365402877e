"""Scrape mode's shared snapshot is renewed in the background: refreshes keep using one up
to twice ``max_age_s`` old while the exporters are scraped, instead of all waiting; an older
one is never used."""

from __future__ import annotations

import asyncio
import threading
import time

from mlfootprint.operator.energy.scrape import ExporterScraper
from tests.text_server import TextServer


def test_a_stale_snapshot_is_served_while_a_new_scrape_runs() -> None:
    served = {"n": 0}
    gate = threading.Event()
    gate.set()

    def page(path: str) -> str:
        gate.wait(10)
        served["n"] += 1
        return (
            'mlfootprint_exporter_build_info{version="t"} 1\n'
            f'mlfootprint_pod_gpu_energy_joules_total{{node="n",namespace="ns",pod="p",container="c",gpu_uuid="G",gpu_model="H100"}} {served["n"]}.0\n'
        )

    http = TextServer(page)
    clock = [1000.0]
    scraper = ExporterScraper(None, [f"{http.base}/metrics"], max_age_s=15.0, clock=lambda: clock[0])

    async def main() -> None:
        first = await scraper.snapshot()  # nothing yet: waits for the scrape
        assert first.pods[("ns", "p")]["c"].gpu["G"] == 1.0
        clock[0] += 20.0  # older than max_age, younger than 2 x max_age
        gate.clear()  # the exporter now hangs
        t = time.monotonic()
        again = await scraper.snapshot()
        assert again is first and time.monotonic() - t < 1.0  # not waiting for the exporter
        gate.set()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if scraper._snapshot is not first:
                break
        renewed = await scraper.snapshot()
        assert renewed is not first and renewed.pods[("ns", "p")]["c"].gpu["G"] == 2.0
        clock[0] += 31.0  # past 2 x max_age: the refresh waits for a new scrape
        latest = await scraper.snapshot()
        assert latest.pods[("ns", "p")]["c"].gpu["G"] == 3.0 and latest.taken_at_s == clock[0]
        await scraper.close()

    try:
        asyncio.run(main())
    finally:
        gate.set()
        http.close()
