# Redis 7 from Debian's packages, standing in for the official redis:7
# image where no registry is reachable: data in /data, and (as the official
# image does when started without a config file) protected mode off, since
# the server is reached from other containers.
FROM bourse-local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["redis-entrypoint"]
CMD ["redis-server"]
