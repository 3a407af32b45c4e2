# The local SageMaker runtime with its two environments: the runtime's own (moto, Optuna) and the
# training/inference container's (torch, torchvision, smdebug), which the runtime runs jobs in.
FROM python:3.11-slim
WORKDIR /opt/project
COPY pyproject.toml ./pyproject.toml
COPY devtools/requirements.py ./devtools/requirements.py
RUN python -m venv /opt/venvs/runtime \
    && python devtools/requirements.py runtime > /tmp/runtime.txt \
    && /opt/venvs/runtime/bin/pip install --no-cache-dir -r /tmp/runtime.txt \
    && python -m venv /opt/venvs/container \
    && python devtools/requirements.py container container-libraries > /tmp/container.txt \
    && /opt/venvs/container/bin/pip install --no-cache-dir -r /tmp/container.txt
COPY local_sagemaker ./local_sagemaker
COPY sagemaker_code ./sagemaker_code
ENV LOCAL_SAGEMAKER_CONTAINER_PYTHON=/opt/venvs/container/bin/python
# Jobs run the code that requests name: never as root. /data is created here so that the named
# volume mounted there starts out owned by this user.
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin sagemaker \
    && mkdir /data && chown sagemaker:sagemaker /data
USER sagemaker
EXPOSE 4570
# 0.0.0.0 inside the container only: the compose file publishes the port on the host's loopback.
CMD ["/opt/venvs/runtime/bin/python", "-m", "local_sagemaker", "serve", \
     "--host", "0.0.0.0", "--port", "4570", "--data-dir", "/data"]
