"""The scoring rules (dbt seeds): checks a ruleset folder before anything is scored with it."""
