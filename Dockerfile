# Routeplane as a container image: nothing but the static musl binary (its TLS roots are
# compiled in) and a config that requires client keys. No shell, no libc, no CA bundle.
#
# The release workflow builds it for linux/amd64 and linux/arm64 from the binaries of
# `make static pi`, copied to target/docker/routeplane-amd64 and -arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE --push .
# Run:
#   docker run -d -p 127.0.0.1:4356:4356 -e ROUTEPLANE_KEY=change-me \
#     -e OPENAI_API_KEY=sk-... IMAGE
FROM scratch
ARG TARGETARCH
COPY --chmod=0755 target/docker/routeplane-${TARGETARCH} /routeplane
COPY dist/docker/routeplane.yaml /etc/routeplane/routeplane.yaml
# nobody:nogroup; mount a directory owned by 65534 on /data to keep subscription logins.
USER 65534:65534
ENV HOME=/data XDG_DATA_HOME=/data XDG_STATE_HOME=/data
EXPOSE 4356
ENTRYPOINT ["/routeplane"]
CMD ["serve", "-c", "/etc/routeplane/routeplane.yaml"]
