# A small SMTP catcher standing in for Mailpit where no registry is
# reachable: SMTP on 1025, and on 8025 the part of Mailpit's HTTP API the
# tests read (/api/v1/messages, /api/v1/message/{ID}, /readyz). `/mailpit
# readyz` is the healthcheck docker-compose.yml gives Mailpit.
FROM bourse-local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-aiosmtpd \
 && rm -rf /var/lib/apt/lists/*
COPY mailcatcher.py /mailpit
EXPOSE 1025 8025
ENTRYPOINT ["/mailpit"]
