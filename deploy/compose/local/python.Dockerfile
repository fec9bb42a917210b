# Stands in for python:3.11-slim-bookworm where no registry is reachable: Debian's Python 3.11 on
# the debootstrap base (deploy/compose/base_image.sh). `python`, `pip` and the CA bundle behave
# as in the official image; pip may install into the system Python (it is this image's only user).
FROM llmfleet-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-venv python-is-python3 \
      libpython3.11 curl \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
