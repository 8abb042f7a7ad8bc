"""Backtests: prove a ruleset predicts conversions before it goes live.

- ``contract`` — the import contract (contacts, activities, outcomes files from any CRM) and the
  importer that loads them into the raw tables through the same row builders the extractors use.
- ``adapters`` — the shipped adapters: UCI Bank Marketing, the Olist marketing funnel and the
  synthetic generator (whose hidden propensity is known), each writing contract files.
- ``scoring`` — scores a ruleset (a seed folder) as of past cutoff dates with the real dbt
  project, in schemas of its own, and reads the scores and the ledger back.
- ``metrics`` / ``learn`` / ``report`` — AUC, precision@k, lift, calibration, MQL volume,
  threshold recommendations, a learned ruleset with a gradient-boosting reference, and the
  static HTML report.
- ``runner`` — the whole backtest as one call (the CLI and the DAG task use it).
"""
