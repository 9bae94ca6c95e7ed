"""The operator station: a live web page served by `bonderd serve` (docs/hmi.md, ADR 0150).

``server`` is the one module that imports aiohttp; ``station`` turns the controller, the
monitor's snapshots and the run records into what the page shows; ``feed`` fans the live
frames out to the browsers, each behind a bounded queue.
"""
