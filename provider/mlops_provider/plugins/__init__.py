"""The provider's Airflow plugin: reports and MLflow pages served by the API server.

:class:`~mlops_provider.plugins.mlops.MlopsPlugin` mounts a FastAPI app under ``/mlops``
(registered through ``get_provider_info()["plugins"]``); the app itself lives in
:mod:`mlops_provider.plugins.app` and is imported on the first request only.
"""
