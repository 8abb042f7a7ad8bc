"""How the ``lead_scoring`` DAG is operated: its schedule and retry settings, the assets each
stage produces, and the run summary written when a run succeeds or a stage fails.

``settings`` and ``assets`` are read when the DAG file is parsed, so they import nothing heavier
than the Airflow SDK and touch no database, file or Variable; ``summary`` runs inside tasks.
"""
