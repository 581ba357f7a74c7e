# The Airflow image of the production stack (docker-compose.yaml): the official Airflow image
# with this provider installed from the repository, and the reference DAGs and their include/
# assets (Feast repo, GX suites) under /opt/airflow.
#
# Versions follow uv.lock (tests/unit/test_compose_file.py checks it): the image's Airflow and
# Python, and the pins of the provider's heaviest dependencies.
#
#   docker build -t airflow-provider-mlops:dev .
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION=3.3.2
ARG MLFLOW_VERSION=3.17.2
ARG FEAST_VERSION=0.67.0

# The provider from this repository (the same files a wheel is built from: the wheel also
# ships dags/ and include/ as the reference project of `python -m mlops_provider init`).
COPY --chown=airflow:0 pyproject.toml README.md LICENSE NOTICE /opt/mlops-provider/
COPY --chown=airflow:0 provider/ /opt/mlops-provider/provider/
COPY --chown=airflow:0 dags/ /opt/mlops-provider/dags/
COPY --chown=airflow:0 include/ /opt/mlops-provider/include/

# Keep apache-airflow at the image's version: pip must not up- or downgrade Airflow itself.
RUN pip install --no-cache-dir \
      "apache-airflow==${AIRFLOW_VERSION}" \
      "mlflow==${MLFLOW_VERSION}" \
      "feast[redis]==${FEAST_VERSION}" \
      "apache-airflow-providers-celery" \
      "psycopg2-binary" \
      "/opt/mlops-provider[postgres]"

# The reference DAGs and their project files. docker-compose.yaml also mounts dags/ and include/
# over these, so edits show without a rebuild; without the mounts the image is self-contained.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 include/ /opt/airflow/include/

# dags/mlops_common.py finds include/ under MLOPS_PROJECT_ROOT (the provider never guesses).
ENV MLOPS_PROJECT_ROOT=/opt/airflow
