-- pgbench script for the read-your-writes cost (bench case ryw-update-select): write a row, then read it back, as two
-- autocommit statements. With read_your_writes = client pooler must send the SELECT to a node that has the UPDATE.
\set aid random(1, 100000 * :scale)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
