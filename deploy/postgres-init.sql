-- The MLflow store's own database (the Dagster one is POSTGRES_DB). Run once, by the postgres
-- image on an empty volume; on a server of your own: createdb -O ea ea_dagster; createdb -O ea ea_mlflow
create database ea_mlflow owner ea;
