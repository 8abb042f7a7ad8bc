# The job's image for the compose stack: Airflow 3.3 with the pinned stack, the package, the DAG,
# the dbt project (manifest parsed at build time) and the Great Expectations context.
FROM apache/airflow:3.3.2-python3.11

ENV LEAD_SCORING_HOME=/opt/lead-scoring \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    DO_NOT_TRACK=1 \
    GX_ANALYTICS_ENABLED=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    AIRFLOW__USAGE_DATA_COLLECTION__ENABLED=False

COPY --chown=airflow:root requirements.txt constraints.txt ${LEAD_SCORING_HOME}/
RUN pip install --no-cache-dir -r ${LEAD_SCORING_HOME}/requirements.txt -c ${LEAD_SCORING_HOME}/constraints.txt

COPY --chown=airflow:root . ${LEAD_SCORING_HOME}
RUN pip install --no-cache-dir --no-deps -e ${LEAD_SCORING_HOME} \
    && lead-scoring dbt-parse

ENV AIRFLOW__CORE__DAGS_FOLDER=${LEAD_SCORING_HOME}/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=${LEAD_SCORING_HOME}/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    LEAD_SCORING_DBT_PROJECT_DIR=${LEAD_SCORING_HOME}/dbt_project \
    LEAD_SCORING_GX_DIR=${LEAD_SCORING_HOME}/expectations
