"""Airflow-free logic of the provider: IO, statistics, model handling, report rendering.

Modules here may import heavy libraries (pandas, pyarrow, scikit-learn, mlflow ...) at module
level; hooks, operators, sensors and DAG files import them lazily, inside functions.
"""
