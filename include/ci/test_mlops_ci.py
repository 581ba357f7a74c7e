"""The MLOps checks of this Airflow project, run by ci/mlops-ci.sh (one stage per marker)."""
