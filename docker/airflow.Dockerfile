# Airflow 3 with this project's Airflow-side requirements (the `airflow` group of pyproject.toml).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml /tmp/project/pyproject.toml
COPY --chown=airflow:root devtools/requirements.py /tmp/project/devtools/requirements.py
RUN python /tmp/project/devtools/requirements.py airflow > /tmp/project/requirements.txt \
    && pip install --no-cache-dir -r /tmp/project/requirements.txt
