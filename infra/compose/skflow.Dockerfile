# A Prefect worker that runs skflow's flows: skflow and its locked dependencies.
FROM python:3.11.11-slim-bookworm
WORKDIR /srv/skflow/app
COPY pyproject.toml constraints.txt README.md ./
COPY estimators estimators
COPY feeders feeders
COPY flows flows
COPY configs configs
RUN pip install --no-cache-dir -c constraints.txt -e ".[flows]"
WORKDIR /srv/skflow
