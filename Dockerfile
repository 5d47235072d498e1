# AI Interaction Module — slim runtime image, non-root, health-checked.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODULE_PORT=8005

WORKDIR /app

# asyncpg, uvloop and cryptography ship manylinux wheels: no compiler needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --chown=app:app app.py runtime.py ./
COPY --chown=app:app web/ web/
COPY --chown=app:app interactions/ interactions/
COPY --chown=app:app completions/ completions/
COPY --chown=app:app llm/ llm/
COPY --chown=app:app router/ router/
COPY --chown=app:app storage/ storage/
COPY --chown=app:app observability/ observability/
COPY --chown=app:app config/ config/
USER app

EXPOSE 8005
# Liveness only (cheap, never calls a provider); /ready is for the load balancer.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os,urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MODULE_PORT','8005'), timeout=2); sys.exit(0)" || exit 1

# SIGTERM drains queued and in-flight interactions for up to SHUTDOWN_GRACE_S.
STOPSIGNAL SIGTERM
CMD ["python", "app.py"]
