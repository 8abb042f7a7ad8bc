"""Running the job locally: the embedded PostgreSQL, the Airflow environment and the demo."""
