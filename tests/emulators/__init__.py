"""Local stand-ins for cloud warehouses (BigQuery, Snowflake), each run from a virtualenv of its own."""
