"""Checks for the CI of an Airflow project that uses the provider (``pytest`` plugin).

``mlops_provider.testing.plugin`` is a pytest plugin (entry point ``pytest11``); it does
nothing unless a run opts in (``--mlops`` or tests marked ``@pytest.mark.mlops``). The modules
of this package import only the standard library at module level: DAG parsing and Airflow
workers never pay for them. See docs/ci.md.
"""
