"""The monitor's use cases: record each event, scrape rounds, consumer lag, and the judging they share."""
