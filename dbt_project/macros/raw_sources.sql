{#-
    Registers the `raw` source tables for the current engine; run at on-run-start so every
    staging model reads source('raw', ...) unchanged on both engines.
    DuckDB: ingestion writes raw.* into the same file, nothing to do.
    Spark: ingestion validates in DuckDB, then orchestration/engine.py exports each raw table to
    Parquet under <EA_SPARK_DIR>/raw/<table>/; here each becomes an external Parquet table.
-#}
{% macro raw_source_tables() -%}
    {{ return(['events', 'accounts', 'users', 'outcomes', 'landed_partitions', 'quarantine']) }}
{%- endmacro %}


{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'engagement_alerts')()) }}
{%- endmacro %}


{% macro default__register_raw_sources() -%}
    {{ return('') }}
{%- endmacro %}


{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set raw_dir = env_var('EA_SPARK_DIR', env_var('EA_DATA_DIR', 'data') ~ '/spark') ~ '/raw' -%}
        {%- do run_query('create database if not exists raw') -%}
        {%- for table in raw_source_tables() -%}
            {#- drop + create picks up a re-export; dropping an external table keeps its files -#}
            {%- do run_query('drop table if exists raw.' ~ table) -%}
            {%- do run_query(
                'create table raw.' ~ table ~ " using parquet location '" ~ raw_dir ~ '/' ~ table ~ "'"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}
