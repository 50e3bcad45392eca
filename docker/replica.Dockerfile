# Test replica image: a static swarmgate-replica binary in an empty image.
# Built by scripts/build-replica-image.sh (the binary is compiled on the host; no base image pulled).
FROM scratch
COPY swarmgate-replica /swarmgate-replica
EXPOSE 1080
HEALTHCHECK --interval=2s --timeout=2s --retries=2 CMD ["/swarmgate-replica", "healthcheck"]
ENTRYPOINT ["/swarmgate-replica"]
