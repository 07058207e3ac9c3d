# Nightcast image: every Airflow component (api-server, scheduler, dag-processor,
# triggerer, Celery workers) runs from it; see docker-compose.yaml.
# requirements.txt pins everything, apache-airflow included, so a slim Python
# image + uv installs exactly what `make test` runs (same uv version as the Makefile).
FROM python:3.11-slim

ARG UV_VERSION=0.13.8
ARG AIRFLOW_UID=50000

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/nightcast/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/nightcast/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    NIGHTCAST_DATA_DIR=/opt/nightcast/data \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false

# libgomp1: LightGBM's OpenMP runtime (not in the slim image).
# postgresql-client, mariadb-client: psql's COPY and the mariadb client are the bulk
# extraction paths (without them extraction falls back to slower Python readers).
# ocl-icd-libopencl1 + nvidia.icd: the OpenCL loader LightGBM's GPU device uses on
# the gpu worker; the NVIDIA container toolkit mounts libnvidia-opencl there.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 ocl-icd-libopencl1 postgresql-client mariadb-client \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /etc/OpenCL/vendors \
    && echo "libnvidia-opencl.so.1" > /etc/OpenCL/vendors/nvidia.icd

WORKDIR /opt/nightcast

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install "uv==${UV_VERSION}" \
    && uv pip install --system --no-cache --compile-bytecode -r requirements.txt

COPY pyproject.toml ./
COPY include/ include/
# Editable, like `make venv`: nightcast.config finds dags/, dbt_project/ and
# expectations/ next to include/.
RUN uv pip install --system --no-cache --compile-bytecode --no-deps -e .

COPY dags/ dags/
COPY plugins/ plugins/
COPY dbt_project/ dbt_project/
COPY expectations/ expectations/
COPY deploy/ deploy/

# Non-root runtime user. The folders that named volumes mount over are created
# here, owned by it, so a fresh volume inherits the ownership.
RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir "${AIRFLOW_HOME}" --create-home airflow \
    && mkdir -p "${AIRFLOW_HOME}/logs" "${NIGHTCAST_DATA_DIR}" \
    && chown -R airflow:0 "${AIRFLOW_HOME}" "${NIGHTCAST_DATA_DIR}" \
    && chmod -R g+rwX "${AIRFLOW_HOME}" "${NIGHTCAST_DATA_DIR}" \
    && python -m compileall -q dags plugins

USER airflow
EXPOSE 8080 8793

ENTRYPOINT ["bash", "/opt/nightcast/deploy/entrypoint.sh"]
CMD ["airflow", "version"]
