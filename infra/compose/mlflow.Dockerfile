# The MLflow tracking server with what its store and auth need: PostgreSQL (psycopg2), S3 (boto3),
# basic auth (Flask-WTF, WTForms); psycopg2, Flask-WTF and WTForms at the versions of skflow's constraints.txt.
# Only the server needs boto3: clients upload artifacts through it (proxied artifacts).
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir psycopg2-binary==2.9.13 boto3==1.44.8 Flask-WTF==1.3.0 WTForms==3.3.2
