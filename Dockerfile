# The Cloud Run image: the Quart app under Hypercorn, one worker process, port 80.
# Plain Dockerfile syntax only (no BuildKit mounts or heredocs), so that the WeChat Cloud Run builder
# and any other builder accept it.
FROM python:3.11-slim

# Package index for pip. On WeChat Cloud Run builders use Tencent's mirror, as the official templates
# do: https://mirrors.cloud.tencent.com/pypi/simple. Cloud Run has no documented way to pass a build
# argument (its version API takes a Dockerfile path, a build directory and env variables), so for
# builds on Cloud Run change the default below. Elsewhere: --build-arg PIP_INDEX_URL=...
ARG PIP_INDEX_URL=https://pypi.org/simple
# Time zone for the timestamps Hypercorn prints (the relay's JSON lines use epoch seconds).
# --build-arg TZ=UTC for UTC.
ARG TZ=Asia/Shanghai

# The base image already ships ca-certificates and tzdata, so there is no apt-get step, and the build
# never needs a Debian mirror. httpx verifies TLS with certifi's bundle, which pip installs.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TZ=${TZ} \
    PORT=80 \
    RELAY_STORE_EXPLICIT=on

WORKDIR /app

# Dependencies first, read from pyproject.toml's [project].dependencies, so this layer is rebuilt only
# when pyproject.toml changes and not on every code change. The project itself is not pip-installed:
# the code runs from /app (PYTHONPATH). That skips a setuptools build, which would need README.md and
# would fetch setuptools from the index.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --no-cache-dir --index-url "$PIP_INDEX_URL" -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Only the runtime packages. Tests, bench, docs and cloudfunctions stay out (see also .dockerignore).
# Compiling the bytecode now makes cold starts faster (Cloud Run scales to zero when minNum is 0).
COPY core ./core
COPY cloudrun ./cloudrun
RUN python -m compileall -q core cloudrun

# The container runs as root, on purpose. containerPort must be 80 (the Cloud Run default),
# and only root or CAP_NET_BIND_SERVICE may bind a port below 1024. Cloud Run's service settings
# expose neither a securityContext nor the ip_unprivileged_port_start sysctl. A file capability
# (setcap) on the interpreter needs the builder to keep xattrs and the runtime to keep the
# capability; neither is documented, and a miss is a crash loop. Nothing else here needs
# root: elsewhere the image runs as any user, given a high port and a writable store, e.g.
#   docker run --user 65534 -e PORT=8080 -e DATABASE_URL=sqlite:////tmp/relay.db -p 8080:8080 IMAGE
EXPOSE 80

# `sh -c` expands $PORT; `exec` makes Hypercorn PID 1, so it gets Cloud Run's SIGTERM and has
# 10 s for requests in flight. The outbox is durable: a delivery cut off here is retried later.
# Hypercorn writes no access log unless --access-logfile is given. The relay logs JSON lines on
# stdout; Hypercorn's own few lines go to stderr.
CMD ["sh", "-c", "exec hypercorn cloudrun.app:app --bind \"0.0.0.0:${PORT}\" --workers 0 --graceful-timeout 10 --read-timeout 10"]
