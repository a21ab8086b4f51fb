-- MLflow's tracking store lives beside Dagster's storage on the same PostgreSQL server
CREATE DATABASE mlflow OWNER tuneline;
