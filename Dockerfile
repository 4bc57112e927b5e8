# remediator image. `make image` builds it with podman (scripts/image.sh); elsewhere:
#   docker build --build-arg VERSION=0.1.0 -t remediator:0.1.0 .
# Two stages. The first installs exactly uv.lock's runtime set (no test or lint group) into
# /opt/venv with the pinned uv; the second copies that venv onto a clean base and runs it as
# uid 10001 with nothing written outside /tmp. tests/deploy/test_dockerfile.py checks these
# rules; tests/release/test_image.py builds and runs the image.

# The base: the official Python slim image, pinned by digest (the digest is from a public
# reference: no registry can be reached from the development and CI machines, so it was not
# fetched there; the release workflow pulls it). Where it cannot be pulled, `make image`
# builds on a Debian bookworm minbase with python3 and python3-venv made by
# scripts/image-base.sh (mmdebstrap). Either base has python3 3.11, ensurepip and useradd.
ARG BASE=docker.io/library/python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
# The trust for the build's downloads where it differs from the base's (a TLS-inspecting
# egress proxy's CA): `make image` mounts this machine's SSL_CERT_FILE for the build's RUN
# steps only and names it here. Neither the file nor these variables reach the image.
ARG SSL_CERT_FILE
ARG PIP_CERT
# uv itself, pinned and hashed: the version every other install path uses.
COPY scripts/uv-requirements.txt /tmp/uv-requirements.txt
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-deps --require-hashes -r /tmp/uv-requirements.txt
WORKDIR /src
# The dependencies first (a layer that changes only with the lock), then the project itself,
# as a regular install (--no-editable: /src is not in the image). --locked: the build fails
# when pyproject.toml and uv.lock disagree. The bytecode is compiled here because the root
# filesystem is read-only at run time.
# Some wheels ship debug symbols and their C/Cython sources (asynch: 57 of its 61 MB); neither
# is used at run time, so the libraries are stripped and the sources dropped (binutils stays
# in this stage). That takes the venv from 176 to about 100 MB.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --locked --no-default-groups --no-install-project \
 && find /opt/venv -name '*.so' -exec strip --strip-unneeded {} + \
 && find /opt/venv/lib -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' \) -delete
COPY README.md ./
COPY remediator ./remediator
COPY handlers ./handlers
RUN /opt/uv/bin/uv sync --locked --no-default-groups --no-editable
# The labels' version must be the installed package's: `make image` passes pyproject's.
ARG VERSION
RUN installed=$(/opt/venv/bin/python -c 'import importlib.metadata as m; print(m.version("remediator"))') \
 && if [ "$VERSION" != "$installed" ]; then \
      echo "build with --build-arg VERSION=$installed (got '$VERSION')" >&2; exit 1; \
    fi

FROM ${BASE} AS runtime
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
# Last, so a new commit rebuilds no layer: pyproject's version (checked above), the commit,
# its time (not the build's: two builds of one commit carry the same labels) and the base.
ARG VERSION
ARG REVISION=unknown
ARG CREATED=unknown
ARG BASE
LABEL org.opencontainers.image.title="remediator" \
      org.opencontainers.image.description="Turns Prometheus Alertmanager alerts into safe, verified, automatic repairs." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
