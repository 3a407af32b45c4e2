"""The UI tests import the plugin package as Airflow does: from plugins/, with in-process Airflow
(imported by the plugin's modules) in a home of its own."""

from airflow_access import use_in_process_airflow

use_in_process_airflow("ui")
