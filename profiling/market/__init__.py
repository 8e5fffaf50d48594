"""Market intelligence: who in the chain a seizure is from, what crack costs and how pure it is
in each area and period, whether it is getting cheaper or more available, and what an
enforcement operation changed (SPEC: Market intelligence).

Stages, one module each:

- :mod:`~profiling.market.seizures` — from exhibits to seizures; the time axis; reading a
  library or an export;
- :mod:`~profiling.market.levels` — supply level probabilities with their reasons;
- :mod:`~profiling.market.prices` — price, purity, price per pure gram and the hedonic index by
  area and period;
- :mod:`~profiling.market.trends` — Theil-Sen slopes with Mann-Kendall tests, availability;
- :mod:`~profiling.market.warnings` — small numbers and emerging markets;
- :mod:`~profiling.market.evaluate` — before and after an operation, displacement;
- :mod:`~profiling.market.pages` — the HTML page of each command.
"""
