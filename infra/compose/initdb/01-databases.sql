-- One database per service (run once, when the PostgreSQL volume is created).
CREATE DATABASE skflow_mlflow;
CREATE DATABASE skflow_prefect;
