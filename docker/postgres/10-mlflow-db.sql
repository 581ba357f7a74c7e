-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d):
-- MLflow's own database and role, separate from Airflow's metadata DB.
CREATE ROLE mlflow WITH LOGIN PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
