-- Run once by the postgres image when deploy/compose.yaml first creates its volume: the
-- tracking service's database next to the suggestion service's (POSTGRES_DB), both owned by
-- POSTGRES_USER. Each service creates its tables itself (`--migrate`).
CREATE DATABASE tracking;
