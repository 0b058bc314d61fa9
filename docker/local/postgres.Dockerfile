# PostgreSQL 15 from Debian's packages, standing in for the official
# postgres:15 image where no registry is reachable: the same
# POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB variables, the same data
# directory and port, pg_isready on PATH.
FROM bourse-local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
# A named volume mounted here takes this directory's owner (postgres).
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint"]
