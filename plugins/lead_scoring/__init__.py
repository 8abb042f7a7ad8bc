"""Lead scoring in the warehouse: extract from the CRM and web analytics, score with dbt,
gate with Great Expectations, and sync only changed scores back to the CRM.

The package is importable by Airflow (it lives in the ``plugins/`` folder) and installed as
``lead-scoring`` for the command line. Sub-packages are split by what they are for:

- ``crm``: the HubSpot CRM v3 client (also works against the local sandbox)
- ``sandbox``: a local CRM server that follows the HubSpot wire contract
- ``synth``: synthetic portals and analytics exports
- ``extract`` / ``load``: sources into ``raw_crm`` / ``raw_analytics`` with COPY
- ``quality``: Great Expectations checkpoints run as gates
- ``sync``: reverse-ETL of changed scores back to the CRM
- ``runtime``: the embedded PostgreSQL, process management and the demo
"""

__version__ = "0.1.0"
