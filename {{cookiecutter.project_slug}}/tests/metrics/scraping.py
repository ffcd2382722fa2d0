"""Reading /metrics the way Prometheus does, with prometheus_client's own parser."""

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    samples: list[Sample]

    @classmethod
    def parse(cls, text: str) -> "Scrape":
        families = text_string_to_metric_families(text)
        return cls([sample for family in families for sample in family.samples])

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels`; 0 if none."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}

    def series(self) -> set[tuple[str, frozenset[tuple[str, str]]]]:
        return {(sample.name, frozenset(sample.labels.items())) for sample in self.samples}


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape.parse(response.text)
