# Nightcast image: every Airflow component (api-server, scheduler, dag-processor,
# triggerer, Celery workers) runs from it; see docker-compose.yaml.
# requirements.txt pins the runtime dependencies, apache-airflow included (tests,
# linters and Compose are in requirements-dev.txt and never reach the image).
#
# BASE_IMAGE: the official Python 3.11 slim image, pinned by digest. Where no
# registry is reachable, any Debian image with `python3` 3.11 and its venv module
# works: deploy/offline/build.sh builds one from Debian packages
# (`docker build --build-arg BASE_IMAGE=nightcast-offline/python:3.11 ...`).
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
FROM ${BASE_IMAGE}

ARG UV_VERSION=0.13.8
ARG AIRFLOW_UID=50000

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
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

# uv (the same version as the Makefile's) in a venv of its own, outside the app's.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
# One virtualenv, whichever base provides Python (the official image's /usr/local
# or Debian's /usr).
COPY requirements.txt ./
RUN python3 -m venv --without-pip "${VIRTUAL_ENV}" \
    && /opt/uv/bin/uv pip install --python "${VIRTUAL_ENV}/bin/python" --no-cache --compile-bytecode -r requirements.txt

COPY pyproject.toml ./
COPY include/ include/
# Editable, like `make venv`: nightcast.config finds dags/, dbt_project/ and
# expectations/ next to include/.
RUN /opt/uv/bin/uv pip install --python "${VIRTUAL_ENV}/bin/python" --no-cache --compile-bytecode --no-deps -e .

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
