# remediator image: `docker build -t remediator .`, `docker run -p 8080:8080 -e ... remediator`.
# Two stages: the first builds a virtualenv with the runtime dependencies (compilers only
# there, for any dependency without a wheel); the second copies just that virtualenv onto a
# clean slim image and runs as an unprivileged user. tests/test_dockerfile.py checks these rules.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY remediator ./remediator
COPY handlers ./handlers
# The package and its runtime dependencies only: no test or lint extras.
RUN pip install . \
 && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REMEDIATOR_RULES=/etc/remediator/rules.yaml \
    REMEDIATOR_PORT=8080
RUN groupadd --system --gid 10001 remediator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin remediator
COPY --from=build /opt/venv /opt/venv
# Nothing is written at run time outside /tmp (mount an emptyDir there when the root
# filesystem is read-only); the rules come from a mounted ConfigMap or volume.
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('REMEDIATOR_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["remediator"]
CMD ["serve"]
