"""The monitor's I/O: tables, repositories, the scraper, the lag probe and its own metrics."""
